"""Hyperband tuning: the hypermodel with keras-tuner's own HyperParameters, a search interrupted and
resumed, and keras-tuner's distributed mode with a chief and two workers as separate processes."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras_tuner
import pytest

from liverlib.config import load_config
from liverlib.tuning import PAPER_BEST, drop_every, make_hypermodel, paper_comparison

ENV_BASE = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}


def _env(tmp_path):
    """A search's own artifacts folder (its cached split), apart from the developer's."""
    return {**ENV_BASE, "LIVERLIB_ARTIFACTS_DIR": str(tmp_path / "artifacts")}


def test_hypermodel_builds_from_default_hyperparameters():
    config = load_config("quick")
    hp = keras_tuner.HyperParameters()
    model = make_hypermodel(config).build(hp)
    assert set(hp.values) == set(PAPER_BEST)
    assert hp.values["dense_units"] in (128, 256, 512) and 0.3 <= hp.values["dropout"] <= 0.7
    assert model.get_layer("head_dense").units == hp.values["dense_units"]
    assert model.get_layer("head_dropout1").rate == pytest.approx(hp.values["dropout"])
    assert model.output_shape == (None, 4) and model.input_shape == (None, 64, 64, 3)
    hp = keras_tuner.HyperParameters()
    hp.Fixed("dense_units", 512)
    assert make_hypermodel(config).build(hp).get_layer("head_dense").units == 512


def test_decay_interval_is_a_quarter_of_the_search_and_the_paper_sits_beside_ours():
    assert drop_every(load_config("paper")) == 20
    assert drop_every(load_config("quick")) == 1
    table = paper_comparison({"dense_units": 128, "dropout": 0.3, "lr_drop_factor": 0.5})
    assert table.loc["dense_units", "paper (reported)"] == 256 and table.loc["dense_units", "this search"] == 128


@pytest.fixture(scope="module")
def tiny_phantom(tmp_path_factory):
    from liverlib.phantom import write_phantom_dataset

    data = tmp_path_factory.mktemp("tune-data") / "phantom"
    write_phantom_dataset(data, n=40, seed=0, size=96, progress=False)
    return data


def _tune_cmd(data, out, *extra):
    return [sys.executable, "-m", "liverlib", "tune", "--profile", "quick", "--data", str(data), "--out", str(out),
            *extra]


def _trials(out):
    found = {}
    for path in out.glob("trial_*/trial.json"):
        trial = json.loads(path.read_text())
        found[trial["trial_id"]] = trial
    return found


@pytest.mark.slow
def test_an_interrupted_search_continues(tiny_phantom, tmp_path):
    out = tmp_path / "search"
    log = tmp_path / "first.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(_tune_cmd(tiny_phantom, out, "--class-weights"), env=_env(tmp_path), stdout=sink,
                                stderr=subprocess.STDOUT)
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        if any(t["status"] == "COMPLETED" for t in _trials(out).values()):
            break
        time.sleep(1)
    if proc.poll() is not None:
        assert proc.returncode == 0, log.read_text()[-3000:]  # a search that failed is a failure, not a skip
        pytest.skip("the search finished before it could be interrupted")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {k: t for k, t in _trials(out).items() if t["status"] == "COMPLETED"}
    assert before, "no trial completed before the kill"
    assert not (out / "best-run").exists()
    resumed = subprocess.run(_tune_cmd(tiny_phantom, out, "--class-weights"), env=_env(tmp_path), capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = _trials(out)
    for trial_id, trial in before.items():  # finished trials were kept, not run again
        assert after[trial_id]["score"] == trial["score"]
        assert after[trial_id]["hyperparameters"] == trial["hyperparameters"]
    assert all(t["status"] == "COMPLETED" for t in after.values())
    log = [json.loads(line) for line in (out / "trials-by-process.jsonl").read_text().splitlines()]
    assert len(log) == len(after)  # every trial trained to the end once: the resumed run did not start over
    for trial in before.values():  # a trial finished before the kill was trained by the first process only
        trained_by = [e["pid"] for e in log if e["hyperparameters"] == trial["hyperparameters"]["values"]]
        assert trained_by == [proc.pid]
    assert (out / "best-run" / "model_card.json").is_file()
    card = json.loads((out / "best-run" / "model_card.json").read_text())
    assert set(card["tuning"]["hyperparameters"]) == set(PAPER_BEST)
    # the trials were weighted as asked, and the best run's card says so
    assert set(card["class_weights"]) == {"0", "1", "2", "3"} and card["config"]["class_weighting"] is True


def test_a_search_under_other_settings_gets_its_own_project(tmp_path):
    import pandas as pd

    from liverlib.tuning import default_project_dir

    # the project name includes the class set (read from the manifest's class column): the paper's four here
    manifest = pd.DataFrame({"sha256": [c * 64 for c in "abcd"], "class": ["benign", "cirrhosis", "malignant", "normal"]})
    config = load_config("laptop", artifacts_dir=tmp_path)
    here = default_project_dir(config, manifest, "val_accuracy")
    assert here == default_project_dir(load_config("laptop", artifacts_dir=tmp_path), manifest, "val_accuracy")
    # an old search at another image size or budget is not continued as if it were this one
    for change in (dict(image_size=96), dict(tuner_max_epochs=4), dict(balanced_sampling=False)):
        assert default_project_dir(config.replace(**change), manifest, "val_accuracy") != here, change
    assert default_project_dir(config, manifest, "val_macro_f1") != here


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_chief_and_two_workers_share_the_search(tiny_phantom, tmp_path):
    out = tmp_path / "distributed"
    port = str(_free_port())
    role_args = ["--oracle-ip", "127.0.0.1", "--oracle-port", port]
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("chief", "tuner0", "tuner1")}
    chief = subprocess.Popen(_tune_cmd(tiny_phantom, out, "--chief", *role_args), env=_env(tmp_path),
                             stdout=logs["chief"], stderr=subprocess.STDOUT)
    time.sleep(5)
    workers = [subprocess.Popen(_tune_cmd(tiny_phantom, out, "--worker", name, *role_args), env=_env(tmp_path),
                                stdout=logs[name], stderr=subprocess.STDOUT) for name in ("tuner0", "tuner1")]
    try:
        for proc in workers:
            proc.wait(timeout=600)
        chief.wait(timeout=120)
    finally:
        for proc in [chief, *workers]:
            if proc.poll() is None:
                proc.kill()
        for f in logs.values():
            f.close()
    outputs = {name: (tmp_path / f"{name}.log").read_text()[-2000:] for name in logs}
    assert chief.returncode == 0, outputs["chief"]
    assert all(w.returncode == 0 for w in workers), outputs
    log = [json.loads(line) for line in (out / "trials-by-process.jsonl").read_text().splitlines()]
    assert {entry["tuner"] for entry in log} == {"tuner0", "tuner1"}  # both workers trained, the chief none
    trials = _trials(out)
    assert trials and all(t["status"] == "COMPLETED" for t in trials.values())
    assert len(log) == len(trials)
    assert (out / "best-run" / "model_card.json").is_file()


def test_training_uses_the_default_strategy_on_one_device():
    import tensorflow as tf

    from liverlib.train import default_strategy

    strategy = default_strategy()
    assert not isinstance(strategy, tf.distribute.MirroredStrategy)
    assert strategy.num_replicas_in_sync == 1


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_macro_f1_is_a_compiled_metric_logged_each_epoch_and_saved_with_the_model(tmp_path, smoothing):
    import keras
    import numpy as np
    from sklearn.metrics import f1_score

    from liverlib.config import load_config
    from liverlib.runs import load_model
    from liverlib.train import compile_for_training

    rng = np.random.default_rng(0)
    x, y = rng.random((40, 3)).astype("float32"), np.arange(40) % 4
    labels = np.eye(4, dtype="float32")[y] if smoothing else y  # label smoothing trains on one-hot labels
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="softmax")])
    config = load_config("quick").replace(checkpoint_metric="val_loss", label_smoothing=smoothing)
    compile_for_training(model, config, macro_f1=True)
    history = model.fit(x, labels, validation_data=(x, labels), epochs=2, verbose=0)
    assert len(history.history["val_macro_f1"]) == 2
    expected = f1_score(y, model.predict(x, verbose=0).argmax(axis=1), average="macro", labels=range(4),
                        zero_division=0)
    assert history.history["val_macro_f1"][-1] == pytest.approx(expected, abs=1e-5)
    model.save(tmp_path / "m.keras")  # a model file that names the metric loads in safe mode
    assert load_model(tmp_path / "m.keras").evaluate(x, labels, verbose=0, return_dict=True)["macro_f1"] == \
        pytest.approx(expected, abs=1e-5)


def test_the_search_can_train_on_a_sample_of_training_patients():
    import pandas as pd

    from liverlib.tuning import search_subset

    manifest = pd.DataFrame({"class": ["a"] * 40 + ["b"] * 20, "group": [f"P{i // 2}" for i in range(60)],
                             "split": ["train"] * 30 + ["val"] * 10 + ["train"] * 14 + ["test"] * 6})
    sub = search_subset(manifest, 0.25, seed=0)
    assert (sub["split"] == "val").sum() == 10 and (sub["split"] == "test").sum() == 6
    kept = sub[sub["split"] == "train"]
    assert kept["group"].nunique() == round(0.25 * 15) + round(0.25 * 7)  # per class, whole patients
    assert set(sub.loc[sub["split"] == "unused", "group"]).isdisjoint(kept["group"])
    assert search_subset(manifest, 1.0, seed=0) is manifest
    assert load_config("laptop").tuner_train_fraction == 0.25 and load_config("paper").tuner_train_fraction == 1.0


def test_hyperband_brackets_match_li_et_al_2018():
    """Li et al. (2018), Table 1: R = 81, eta = 3 gives five brackets of successive halving."""
    from liverlib.tuning import hyperband_brackets

    table = hyperband_brackets(81, 3)
    expected = {4: ([81, 27, 9, 3, 1], [1, 3, 9, 27, 81]), 3: ([34, 11, 3, 1], [3, 9, 27, 81]),
                2: ([15, 5, 1], [9, 27, 81]), 1: ([8, 2], [27, 81]), 0: ([5], [81])}
    assert list(table["bracket"].unique()) == [4, 3, 2, 1, 0]
    for s, (sizes, epochs) in expected.items():
        rows = table[table["bracket"] == s]
        assert list(rows["configurations"]) == sizes and list(rows["epochs"]) == epochs
        assert list(rows["round"]) == list(range(s + 1))
    # each bracket costs about B = (s_max + 1) R = 405 epochs when every configuration trains from scratch
    per_bracket = table.groupby("bracket")["epochs_total"].sum()
    assert per_bracket.to_dict() == {4: 405, 3: 363, 2: 351, 1: 378, 0: 405}
    assert (per_bracket <= 405).all()
    # survivors that continue from their checkpoint train only the epochs they have not trained yet
    first = table[table["bracket"] == 4]
    assert list(first["epochs_new"]) == [81 * 1, 27 * 2, 9 * 6, 3 * 18, 1 * 54]
    # the quick and laptop profiles' budget (R = 2 < eta): one bracket, plain training
    assert hyperband_brackets(2, 3)[["bracket", "configurations", "epochs"]].values.tolist() == [[0, 1, 2]]


@pytest.mark.parametrize("max_epochs,factor", [(2, 3), (80, 3), (81, 3), (10, 2), (100, 4)])
def test_hyperband_brackets_round_as_keras_tuner_does(max_epochs, factor):
    from liverlib.errors import LiverlibError
    from liverlib.tuning import hyperband_brackets

    oracle = keras_tuner.oracles.HyperbandOracle(objective=keras_tuner.Objective("val_accuracy", "max"),
                                                 max_epochs=max_epochs, factor=factor)
    table = hyperband_brackets(max_epochs, factor, rounding="keras-tuner")
    assert table["bracket"].nunique() == oracle._get_num_brackets()
    for row in table.itertuples():
        assert row.configurations == oracle._get_size(row.bracket, row.round)
        assert row.epochs == oracle._get_epochs(row.bracket, row.round)
    with pytest.raises(LiverlibError, match="rounding"):
        hyperband_brackets(max_epochs, factor, rounding="other")
    with pytest.raises(LiverlibError, match="factor"):
        hyperband_brackets(max_epochs, 1)
