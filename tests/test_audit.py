"""The leakage audit of a folder and a split (liverlib.audit)."""

import json
import subprocess
import sys

import pandas as pd

from liverlib.audit import audit_folder, calibrate
from liverlib.data import scan_dataset


def test_audit_flags_the_leaky_split_and_passes_the_grouped_one(phantom_with_copies):
    grouped = audit_folder(phantom_with_copies, "grouped", seed=1)
    leaky = audit_folder(phantom_with_copies, "random", seed=1)
    assert grouped.near_duplicate_pairs_across_splits == 0
    assert leaky.near_duplicate_pairs_across_splits >= 5
    report = leaky.as_json()
    assert report["images"] == 180 and len(report["pairs"]) == report["near_duplicate_pairs_across_splits"]
    assert {"test", "train", "distance"} <= set(report["pairs"][0])


def test_calibration_on_known_copies(phantom_with_copies):
    ds = scan_dataset(phantom_with_copies)
    ph = pd.read_csv(phantom_with_copies / "manifest.csv", dtype=str, keep_default_na=False)
    m = ds.manifest.assign(augmented_from=ds.manifest["rel"].map(dict(zip(ph.file, ph.augmented_from))))
    table = calibrate(m, thresholds=[0.05], negatives=4000).iloc[0]
    assert table.recall >= 0.8 and table.precision >= 0.95


def test_audit_cli_json(phantom_with_copies):
    out = subprocess.run([sys.executable, "-m", "liverlib.cli", "audit", str(phantom_with_copies), "--split",
                          "random", "--seed", "1", "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["images"] == 180 and report["near_duplicate_pairs_across_splits"] >= 5
    missing = subprocess.run([sys.executable, "-m", "liverlib.cli", "audit", "/no/such/folder"],
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
