"""Did a run learn: the majority-class baseline, the words a comparison chooses, baselines kept in a run folder."""

import json

import numpy as np
import pandas as pd
import pytest

from liverlib.verdict import interval_of, majority_class, relation, run_folder_baselines


def test_majority_class_answers_the_most_frequent_training_class():
    labels = np.array([0, 0, 0, 1, 2, 3, 3])
    probs = majority_class(None, labels, train=np.arange(5), test=np.arange(5, 7))
    assert probs.shape == (2, 4)
    assert (probs.argmax(axis=1) == 0).all() and np.allclose(probs.sum(axis=1), 1)


@pytest.mark.parametrize("interval, reference, words", [
    ((0.3, 0.4), 0.2, "above"),
    ((0.3, 0.4), 0.5, "below"),
    ((0.3, 0.4), 0.35, "not distinguishable from"),
    ((0.3, 0.4), 0.3, "not distinguishable from"),
])
def test_relation_words_follow_the_interval(interval, reference, words):
    assert relation(interval, reference) == words


def test_interval_of_reads_a_baseline_row():
    assert interval_of({"macro_f1 95% CI": "0.176-0.205"}) == (0.176, 0.205)
    assert all(np.isnan(interval_of({"macro_f1 95% CI": "n/a"})))


def _run_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        cls = ("benign", "normal")[i % 2]
        path = tmp_path / "data" / cls / f"s{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.normal(80 + 80 * (i % 2), 5, (32, 32))).clip(0, 255).astype(np.uint8)).save(path)
        rows.append({"file": str(path), "class": cls, "group": f"P{i // 4}", "split": "train" if i < 16 else "test"})
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame(rows).to_csv(run / "split.csv", index=False)
    return run


def test_run_folder_baselines_are_computed_once_and_kept(tmp_path, monkeypatch):
    run = _run_folder(tmp_path)
    table = run_folder_baselines(run, (40, 400), size=16, only=["majority class", "histogram + logistic regression"],
                                 n_boot=20)
    assert list(table.index) == ["majority class", "histogram + logistic regression"]
    assert table.loc["histogram + logistic regression", "accuracy"] == 1.0
    kept = json.loads((run / "evaluation" / "baselines.json").read_text())
    assert set(kept["rows"]) == {"majority class", "histogram + logistic regression"}

    import liverlib.verdict as verdict

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed a kept baseline")
    monkeypatch.setattr(verdict, "majority_class", refuse)
    again = run_folder_baselines(run, (40, 400), size=16, only=["majority class"], n_boot=20)
    assert again.loc["majority class", "macro_f1"] == table.loc["majority class", "macro_f1"]


def test_the_baselines_see_the_runs_own_input_size_and_crop(tmp_path, monkeypatch):
    import liverlib.preprocess as preprocess

    run = _run_folder(tmp_path)
    card = {"class_names": ["benign", "cirrhosis", "malignant", "normal"], "input_size": 24, "crop": "body",
            "window": {"level": 40.0, "width": 400.0}, "schema_version": 3, "input_normalisation": "unit"}
    (run / "model_card.json").write_text(json.dumps(card))
    seen = []
    real = preprocess.load_images

    def spy(files, size, window=None, workers=4, crop="none"):
        seen.append((size, crop))
        return real(files, size, window, workers, crop)
    monkeypatch.setattr(preprocess, "load_images", spy)
    run_folder_baselines(run, (40, 400), only=["majority class"], n_boot=20)
    assert seen == [(24, "body")]
    kept = json.loads((run / "evaluation" / "baselines.json").read_text())["key"]
    assert (kept["size"], kept["crop"]) == (24, "body")
    run_folder_baselines(run, (40, 400), size=16, crop="none", only=["majority class"], n_boot=20)
    assert seen[-1] == (16, "none")  # asked for other inputs: computed again, not read from the kept rows
