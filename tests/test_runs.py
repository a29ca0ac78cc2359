"""The run folder: cards old and new load, the card's format is what training writes, the loader is cached."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liverlib.config import CLASS_NAMES, load_config
from liverlib.errors import LiverlibError
from liverlib.runs import (CARD_FILE, CARD_SCHEMA_VERSION, MODEL_FILE, cached, card_settings_key, load_run, read_card,
                           write_card)

OLD_CARD = Path(__file__).parent / "data" / "model_card_v1.json"  # written by liverlib before schema_version


def test_a_card_written_before_schema_version_still_loads(tmp_path):
    shutil.copy(OLD_CARD, tmp_path / CARD_FILE)
    assert "schema_version" not in json.loads(OLD_CARD.read_text())
    card = read_card(tmp_path)
    assert card["class_names"] == list(CLASS_NAMES) and card["input_size"] == 64
    assert card["window"] == {"level": 40.0, "width": 400.0}
    assert card["normal_class"] == "normal"  # filled in: the card predates the key
    assert card_settings_key(tmp_path) == card["settings_sha256"]


def test_a_run_with_an_old_card_classifies(tiny_run, tmp_path):
    from liverlib.classify import get_classifier

    run = tmp_path / "old-run"
    run.mkdir()
    shutil.copy(tiny_run / MODEL_FILE, run / MODEL_FILE)
    shutil.copy(OLD_CARD, run / CARD_FILE)
    loaded = load_run(run)
    assert loaded.card["profile"] == "laptop" and loaded.model.inputs[0].shape[1] == 64
    assert (loaded.card["crop"], loaded.card["input_normalisation"]) == ("none", "unit")  # what it was trained with
    assert loaded.card["backbone"] == "ResNet-50"  # every run before the quick profile's ResNet-14
    assert get_classifier(run).class_names == list(CLASS_NAMES)


def test_new_cards_carry_the_schema_version_and_keep_the_old_format(tmp_path):
    from liverlib.train import model_card

    config = load_config("laptop", artifacts_dir=tmp_path)
    manifest = pd.DataFrame({"class": ["benign", "normal"] * 3, "split": ["train", "train", "val"] * 2,
                             "synthetic": True, "sha256": [hashlib.sha256(bytes([i])).hexdigest() for i in range(6)]})
    history = pd.DataFrame({"epoch": [0, 1], "val_loss": [1.0, 0.9], "val_macro_f1": [0.2, 0.3]})
    card = model_card(config, manifest, history, {"val_accuracy": 0.5}, "random initialisation", None, "0" * 64)
    write_card(tmp_path, card)
    written = json.loads((tmp_path / CARD_FILE).read_text())
    assert written["schema_version"] == CARD_SCHEMA_VERSION == 3
    old = json.loads(OLD_CARD.read_text())
    # normal_class, backbone: optional (read_card fills them in for older cards), so no new schema version
    assert set(written) == set(old) | {"schema_version", "crop", "input_normalisation", "normal_class", "backbone"}
    assert written["backbone"] == "ResNet-50" and read_card(tmp_path)["backbone"] == "ResNet-50"
    assert written["class_names"] == ["benign", "normal"] and written["normal_class"] == "normal"
    assert (written["crop"], written["input_normalisation"]) == (config.crop, "unit")
    recipe_levers = {"crop", "weights", "bn_momentum", "lr_schedule", "label_smoothing",  # config fields since v2
                     "checkpoint_metric", "balanced_sampling", "backbone_blocks"}
    assert set(written["config"]) == set(old["config"]) | recipe_levers and set(written["window"]) == set(old["window"])
    assert read_card(tmp_path)["best_epoch"] == 1


def test_a_card_from_a_newer_liverlib_or_without_what_classify_needs_is_refused(tmp_path):
    card = json.loads(OLD_CARD.read_text())
    (tmp_path / CARD_FILE).write_text(json.dumps({**card, "schema_version": CARD_SCHEMA_VERSION + 1}))
    with pytest.raises(LiverlibError, match="update liverlib"):
        read_card(tmp_path)
    (tmp_path / CARD_FILE).write_text(json.dumps({k: v for k, v in card.items() if k != "window"}))
    with pytest.raises(LiverlibError, match="lacks window"):
        read_card(tmp_path)
    (tmp_path / CARD_FILE).write_text("{not json")
    with pytest.raises(LiverlibError, match="not valid JSON"):
        read_card(tmp_path)


def test_cached_builds_once_per_model_file_and_again_after_it_changes(tmp_path):
    (tmp_path / MODEL_FILE).write_bytes(b"first")
    built = []

    def build(path):
        built.append(path)
        return object()

    first = cached(tmp_path, build)
    assert cached(tmp_path, build) is first and len(built) == 1
    (tmp_path / MODEL_FILE).write_bytes(b"second, retrained")  # another size (and time): built again
    assert cached(tmp_path, build) is not first and len(built) == 2
    assert np.all([p == tmp_path.resolve() for p in built])


def test_load_run_refuses_unsafe_or_incomplete_models(tmp_path):
    import keras

    with pytest.raises(LiverlibError, match="not a finished training run"):
        load_run(tmp_path)
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "model.keras")
    (tmp_path / "model_card.json").write_text(json.dumps({"class_names": ["a", "b"], "input_size": 4,
                                                          "window": {"level": 40, "width": 400}}))
    with pytest.raises(LiverlibError, match="unsafe deserialisation"):
        load_run(tmp_path)


def test_latest_run_ignores_runs_trained_under_other_settings(tmp_path):
    """After a profile changes (say, its image size), its old runs are not taken for the new profile's run."""
    from liverlib.config import training_settings_key
    from liverlib.runs import latest_run

    config = load_config("laptop", artifacts_dir=tmp_path)
    old = config.replace(image_size=96)
    for name, cfg, mtime in (("laptop-aaa-old-seed42", old, 2_000_000_000), ("laptop-aaa-new-seed42", config, 1_000_000_000)):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        (run / "model_card.json").write_text(json.dumps({"settings_sha256": training_settings_key(cfg)}))
        os.utime(run / "model_card.json", (mtime, mtime))
    # the old run is newer, but only the run with this configuration's settings counts
    assert latest_run(config) == tmp_path / "runs" / "laptop-aaa-new-seed42"
    assert latest_run(old) == tmp_path / "runs" / "laptop-aaa-old-seed42"
    assert latest_run(config, same_settings=False) == tmp_path / "runs" / "laptop-aaa-old-seed42"
    assert latest_run(config.replace(dropout=0.3)) is None


def test_the_compiled_macro_f1_counts_one_class_per_slice_even_when_probabilities_tie():
    from sklearn.metrics import f1_score

    from liverlib.runs import macro_f1_metric

    labels, uniform = np.array([0, 1, 2]), np.full((3, 3), 1 / 3, dtype="float32")
    metric = macro_f1_metric()(3)
    metric.update_state(labels, uniform)  # a collapsed network: arg-max answers class 0 for every slice
    expected = f1_score(labels, uniform.argmax(axis=1), average="macro", labels=range(3), zero_division=0)
    assert float(metric.result()) == pytest.approx(expected, abs=1e-5)
    one_hot = macro_f1_metric()(3)
    one_hot.update_state(np.eye(3, dtype="float32")[labels], uniform)  # label smoothing's one-hot labels
    assert float(one_hot.result()) == pytest.approx(expected, abs=1e-5)


def test_an_interrupted_run_resumes_only_under_the_settings_it_started_with(tmp_path):
    from liverlib.runs import check_resume, started_record

    config = load_config("laptop", artifacts_dir=tmp_path)
    started = json.loads(json.dumps(started_record(config, None, "random initialisation")))  # as read back
    assert started["settings"]["balanced_sampling"] is True and len(started["settings_sha256"]) == 64
    check_resume(tmp_path, started, config, None)  # the same settings: resumed
    older = {"weights": "random initialisation", "checkpoint_metric": "val_macro_f1"}  # before settings were kept
    check_resume(tmp_path, older, config.replace(seed=7), None)
    # the profile changed since the run started (class weights then, balanced sampling now): refused, by name
    earlier = started_record(config.replace(balanced_sampling=False, class_weighting=True), None, "x")
    with pytest.raises(LiverlibError, match="other training settings") as refused:
        check_resume(tmp_path, earlier, config, None)
    assert "balanced_sampling False (now True)" in str(refused.value)
    assert "class_weighting True (now False)" in str(refused.value) and "--overwrite" in str(refused.value)
    with pytest.raises(LiverlibError, match="--keep-epoch-by val_loss"):
        check_resume(tmp_path, {**started, "checkpoint_metric": "val_loss"}, config, None)
