"""Patient-grouped, stratified 70/15/15 splits and their files (liverlib.splits)."""

import numpy as np
import pandas as pd
import pytest

from liverlib.errors import LiverlibError
from liverlib.splits import assert_groups_disjoint, load_split, make_split, save_split, split_table


def _toy_manifest(n_groups=60, per_group=3, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        cls = rng.choice(["benign", "malignant", "cirrhosis", "normal"], p=[0.6, 0.2, 0.08, 0.12])
        for k in range(per_group):
            rows.append({"file": f"/x/g{g}_{k}.png", "class": cls, "group": f"g{g}", "sha256": f"{g}-{k}"})
    return pd.DataFrame(rows)


def test_grouped_split_is_70_15_15_stratified_and_group_disjoint():
    m = _toy_manifest(n_groups=200)
    m["split"] = make_split(m, (0.7, 0.15, 0.15), seed=1)
    assert_groups_disjoint(m)
    shares = m["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.7, abs=0.03)
    assert shares["val"] == pytest.approx(0.15, abs=0.03) and shares["test"] == pytest.approx(0.15, abs=0.03)
    for cls, rows in m.groupby("class"):
        assert set(rows["split"]) == {"train", "val", "test"}, cls
    table = split_table(m)
    assert table.loc["total"].sum() == len(m)


def test_the_disjointness_check_fails_when_a_group_crosses():
    m = _toy_manifest()
    m["split"] = make_split(m, seed=0)
    first = m.index[m["group"] == "g0"][0]
    m.loc[first, "split"] = "test" if m.loc[first, "split"] != "test" else "train"
    with pytest.raises(LiverlibError, match="appear in more than one split"):
        assert_groups_disjoint(m)


def test_random_split_crosses_groups_and_splits_are_seeded():
    m = _toy_manifest()
    random_split = m.assign(split=make_split(m, seed=0, strategy="random"))
    with pytest.raises(LiverlibError):
        assert_groups_disjoint(random_split)
    assert make_split(m, seed=3).tolist() == make_split(m, seed=3).tolist()
    assert make_split(m, seed=3).tolist() != make_split(m, seed=4).tolist()


def test_split_is_saved_and_reloaded(tmp_path):
    m = _toy_manifest()
    m["split"] = make_split(m, seed=2)
    sha = save_split(m, tmp_path / "split.csv")
    assert len(sha) == 64
    assert load_split(m.drop(columns="split"), tmp_path / "split.csv").tolist() == m["split"].tolist()
    extra = pd.concat([m, m.head(1).assign(file="/x/new.png")])
    with pytest.raises(LiverlibError, match="not in the saved split"):
        load_split(extra, tmp_path / "split.csv")
    # the same images in a folder that has moved keep their split (matched by their path inside the folder)
    moved = m.drop(columns="split").assign(file=m["file"].str.replace("/x/", "/data/moved/x/", regex=False))
    assert load_split(moved, tmp_path / "split.csv").tolist() == m["split"].tolist()
    renamed = moved.assign(file=moved["file"].str.replace("g1_", "h1_", regex=False))  # not the same files
    with pytest.raises(LiverlibError, match="not in the saved split"):
        load_split(renamed, tmp_path / "split.csv")


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.5), (0.7, 0.3), (-0.1, 0.6, 0.5)])
def test_bad_fractions(fractions):
    with pytest.raises(LiverlibError, match="three non-negative numbers summing to 1"):
        make_split(_toy_manifest(), fractions)
