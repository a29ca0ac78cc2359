"""Training through the CLI: artifacts, determinism, and a real process killed mid-run and resumed.

Each training process spends most of its time building the graph (of the quick profile's ResNet-14), so these
tests share runs.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from liverlib.config import load_config
from liverlib.errors import LiverlibError
from liverlib.phantom import write_phantom_dataset
from liverlib.runs import best_epoch, latest_backup, read_history

pytestmark = pytest.mark.slow


def _train_cmd(data, out, *extra):
    return [sys.executable, "-m", "liverlib.cli", "train", "--profile", "quick", "--data", str(data), "--out", str(out),
            *extra]


def _env(tmp):
    env = dict(os.environ)
    env["LIVERLIB_ARTIFACTS_DIR"] = str(tmp / "artifacts")
    env.pop("LIVERLIB_PROFILE", None)
    return env


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    write_phantom_dataset(tmp / "data", n=60, seed=2, size=96, workers=1, progress=False, slices_per_patient=1)
    return tmp


@pytest.fixture(scope="module")
def two_runs(workdir):
    """The same quick run twice, one epoch each, same seed."""
    outs = []
    for name in ("run_a", "run_b"):
        out = workdir / name
        result = subprocess.run(_train_cmd(workdir / "data", out, "--epochs", "1"), capture_output=True, text=True,
                                env=_env(workdir), timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        outs.append((out, result))
    return outs


def test_cli_train_writes_a_complete_run_folder(two_runs):
    out, result = two_runs[0]
    assert {"model.keras", "model_card.json", "history.csv", "curves.png", "split.csv"} <= {p.name for p in out.iterdir()}
    assert not (out / "backup").exists()
    card = json.loads((out / "model_card.json").read_text())
    for key in ("class_names", "input_size", "window", "profile", "seed", "data_manifest_sha256", "split_sha256",
                "versions", "metrics"):
        assert key in card, key
    assert card["class_names"] == ["benign", "cirrhosis", "malignant", "normal"]
    assert card["input_size"] == 64 and card["profile"] == "quick" and card["synthetic_data"] is True
    assert set(card["metrics"]) == {"val_accuracy", "val_balanced_accuracy", "val_macro_f1"}
    # the quick profile trains without class weights unless asked; the card says which settings it ran under
    assert card["class_weights"] is None and len(card["settings_sha256"]) == 64
    assert "estimated time" in result.stdout and "validation:" in result.stdout
    # the quick profile keeps the epoch with the highest validation macro-F1, a compiled metric in the history
    history = pd.read_csv(out / "history.csv")
    assert card["config"]["checkpoint_metric"] == "val_macro_f1"
    assert card["best_epoch"] == best_epoch(history, "val_macro_f1") is not None


def test_same_seed_same_metrics(two_runs):
    (a, _), (b, _) = two_runs
    ha, hb = pd.read_csv(a / "history.csv"), pd.read_csv(b / "history.csv")
    assert len(ha) == len(hb) == 1
    np.testing.assert_array_equal(ha[["loss", "val_loss", "accuracy"]].to_numpy(),
                                  hb[["loss", "val_loss", "accuracy"]].to_numpy())
    ca, cb = (json.loads((p / "model_card.json").read_text()) for p in (a, b))
    assert ca["metrics"] == cb["metrics"] and ca["split_sha256"] == cb["split_sha256"]


def test_saved_model_loads_in_safe_mode(two_runs):
    from liverlib.runs import load_run

    run = load_run(two_runs[0][0])
    assert run.model.output_shape == (None, 4)


def test_a_killed_run_resumes_where_it_stopped(workdir, monkeypatch, capsys):
    data, out = workdir / "data", workdir / "killed"
    epochs = "3"
    # head only for the first epoch, then everything: the resume also crosses from one phase to the next
    proc = subprocess.Popen(_train_cmd(data, out, "--epochs", epochs, "--head-only-epochs", "1", "--class-weights",
                                       "--batch-size", "12"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(workdir))
    history = out / "history.csv"
    deadline = time.time() + 600
    try:
        while time.time() < deadline:
            if latest_backup(out) is not None:  # a complete end-of-epoch backup is on disk
                break
            if proc.poll() is not None:
                pytest.fail("training finished before it could be interrupted:\n" + proc.stdout.read()[-2000:])
            time.sleep(0.5)
        else:
            pytest.fail("the first epoch never finished")
        proc.send_signal(signal.SIGKILL)  # as abrupt as a power loss
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = latest_backup(out)[1] + 1
    assert len(read_history(out)) >= done_before
    assert not (out / "model_card.json").exists()

    # the two refusals, in this process (the CLI's main, as `liverlib train` calls it): no TensorFlow start-up each
    from liverlib.cli import main

    monkeypatch.setenv("LIVERLIB_ARTIFACTS_DIR", str(workdir / "artifacts"))
    monkeypatch.delenv("LIVERLIB_PROFILE", raising=False)
    capsys.readouterr()
    assert main(_train_cmd(data, out, "--epochs", epochs)[3:]) == 1
    assert "--resume" in capsys.readouterr().err
    # the backup was compiled to keep the epoch by validation macro-F1 (the quick profile's rule): resuming it
    # under the other rule would never checkpoint, so it is refused with the option that fits
    assert main(_train_cmd(data, out, "--epochs", epochs, "--head-only-epochs", "1", "--class-weights",
                           "--batch-size", "12", "--resume", "--keep-epoch-by", "val_loss")[3:]) == 1
    other_rule = capsys.readouterr().err
    assert "--keep-epoch-by val_macro_f1" in other_rule, other_rule[-2000:]

    resumed = subprocess.run(_train_cmd(data, out, "--epochs", epochs, "--head-only-epochs", "1", "--class-weights",
                                        "--batch-size", "12", "--resume"),
                             capture_output=True, text=True, env=_env(workdir), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{done_before} of {epochs} epochs done" in resumed.stdout
    # Keras numbers epochs from 1: the resumed process starts after the last completed one, not at 1
    assert "Epoch 1/" not in resumed.stdout and f"Epoch {done_before + 1}/{epochs}" in resumed.stdout
    raw = pd.read_csv(history)
    assert sorted(raw["epoch"].unique()) == list(range(int(epochs)))
    assert len(raw) <= int(epochs) + 1  # at most the interrupted epoch is run twice
    assert (out / "model_card.json").exists() and not (out / "backup").exists()
    card = json.loads((out / "model_card.json").read_text())
    assert set(card["class_weights"]) == {"0", "1", "2", "3"} and card["config"]["class_weighting"] is True
    assert card["config"]["batch_size"] == 12  # --batch-size overrides the profile's 16
    assert "class weights: benign" in resumed.stdout
    from liverlib.runs import load_run

    # the kept model (highest validation macro-F1) trains every stage if it is from epoch 2 or 3, the head only
    # if it is from epoch 1
    kept = load_run(out).model
    assert all(layer.trainable for layer in kept.layers) == (card["best_epoch"] >= 1)
    if done_before == 1:  # resumed at the phase boundary: the whole network trains from here on
        assert "epochs 2-3: training conv1, conv2, conv3, conv4, conv5, head" in resumed.stdout


def test_train_refuses_a_dataset_too_small_to_split(tmp_path):
    from liverlib.config import load_config
    from liverlib.train import train

    manifest = pd.DataFrame({"file": ["a.png"], "class": ["benign"], "label": [0], "group": ["g"], "sha256": ["x"],
                             "split": ["train"]})
    with pytest.raises(LiverlibError, match="both the 'train' and the 'val' split"):
        train(load_config("quick", artifacts_dir=tmp_path), manifest, tmp_path / "run")


def test_the_kept_epoch_is_the_best_by_the_checkpoint_metric():
    history = pd.DataFrame({"epoch": [0, 1, 2, 3], "val_loss": [1.0, 0.8, 0.9, 0.8],
                            "val_macro_f1": [0.2, 0.25, 0.4, 0.4]})
    assert best_epoch(history, "val_loss") == 1  # lowest; the first of ties
    assert best_epoch(history, "val_macro_f1") == 3  # highest; of ties, the lower validation loss
    assert best_epoch(history.drop(columns="val_macro_f1"), "val_macro_f1") is None
    assert best_epoch(history.iloc[:0], "val_loss") is None
    with pytest.raises(LiverlibError, match="checkpoint metric"):
        load_config("quick").replace(checkpoint_metric="val_accuracy")


def test_balanced_class_weights_give_every_class_the_same_total_weight():
    from liverlib.train import balanced_class_weights

    weights = balanced_class_weights(np.array([0, 0, 0, 1]), num_classes=2)
    assert weights == {0: pytest.approx(4 / 6), 1: pytest.approx(2.0)}


def test_balanced_sampling_draws_each_class_equally_often_and_replaces_class_weights():
    from liverlib.train import balanced_rows, training_data

    rows = pd.DataFrame({"file": [f"f{i}.png" for i in range(40)], "split": "train",
                         "label": [0] * 28 + [1] * 8 + [2] * 4})
    drawn = balanced_rows(rows, seed=3)
    assert len(drawn) == 39 and np.bincount(drawn["label"]).tolist() == [13, 13, 13]  # len // classes each
    assert set(drawn["file"]) <= set(rows["file"]) and drawn["file"].nunique() < len(drawn)  # rare ones repeat
    assert drawn["file"].tolist() == balanced_rows(rows, seed=3)["file"].tolist()  # the same for a seed
    assert drawn["file"].tolist() != balanced_rows(rows, seed=4)["file"].tolist()
    assert not drawn["label"].is_monotonic_increasing  # shuffled, not class after class
    # the pipeline trains on the resampled rows only when the configuration asks for it
    manifest = pd.concat([rows, rows.head(4).assign(split="val")]).assign(
        **{"class": lambda d: d["label"].map({0: "benign", 1: "cirrhosis", 2: "malignant"})})
    config = load_config("quick")
    assert len(training_data(config, manifest)[0]) == 40
    balanced = config.replace(balanced_sampling=True)
    assert np.bincount(training_data(balanced, manifest)[0]["label"]).tolist() == [13, 13, 13]
    assert "each class equally often" in dict(balanced.as_rows())["sampling"]
    # both corrections at once over-correct: refused, saying how to choose
    with pytest.raises(LiverlibError, match="turn one off"):
        load_config("laptop").replace(class_weighting=True)
    laptop = load_config("laptop")  # balanced sampling won on every seed of recipe_seeds.json: the profile's choice
    assert laptop.balanced_sampling and not laptop.class_weighting
    assert not load_config("paper").balanced_sampling and not load_config("paper").class_weighting  # the paper's


@pytest.mark.parametrize("flags, profile, expected", [
    ([], "laptop", (True, False)),  # the profile's own
    (["--class-weights"], "laptop", (False, True)),  # class weights replace the profile's balanced sampling
    (["--no-balanced-sampling"], "laptop", (False, False)),
    (["--balanced-sampling"], "paper", (True, False)),
    (["--class-weights"], "paper", (False, True)),
    (["--balanced-sampling", "--no-class-weights"], "paper", (True, False)),
])
def test_cli_imbalance_flags_replace_the_profiles_other_correction(flags, profile, expected):
    from liverlib.cli import _imbalance_changes, build_parser

    for command in ("train", "tune"):
        args = build_parser().parse_args([command, "--profile", profile, *flags])
        config = load_config(profile).replace(**_imbalance_changes(args))
        assert (config.balanced_sampling, config.class_weighting) == expected, (command, flags)
    both = build_parser().parse_args(["train", "--profile", "laptop", "--balanced-sampling", "--class-weights"])
    with pytest.raises(LiverlibError, match="turn one off"):
        load_config("laptop").replace(**_imbalance_changes(both))


def test_cli_refuses_balanced_sampling_with_class_weights_before_training(tmp_path):
    result = subprocess.run([sys.executable, "-m", "liverlib.cli", "train", "--profile", "quick", "--balanced-sampling",
                             "--class-weights", "--out", str(tmp_path / "run")], capture_output=True, text=True,
                            env=_env(tmp_path), timeout=300)
    assert result.returncode != 0 and "leave out --class-weights or --balanced-sampling" in result.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_cli_rejects_unknown_fine_tune_stages(tmp_path):
    result = subprocess.run([sys.executable, "-m", "liverlib.cli", "train", "--profile", "quick", "--fine-tune",
                             "conv9,head", "--out", str(tmp_path / "r")], capture_output=True, text=True,
                            env=_env(tmp_path))
    assert result.returncode == 1 and "unknown stage(s) conv9" in result.stderr


def test_gpu_options_mixed_precision_and_xla_reach_the_model():
    import keras

    from liverlib.config import load_config
    from liverlib.model import build_modified_resnet50
    from liverlib.train import compile_for_training, precision_policy

    from tensorflow.python.framework.config import (disable_op_determinism, enable_op_determinism,
                                                    is_op_determinism_enabled)

    # Keras compiles without XLA while op determinism is on, which any training earlier in this process (a
    # fixture, another test, in whatever order they ran) turns on: off for this test, as it was after it
    deterministic = is_op_determinism_enabled()
    disable_op_determinism()  # not in TensorFlow's public API, unlike enable_op_determinism
    try:
        _check_gpu_options(keras, load_config, build_modified_resnet50, compile_for_training, precision_policy)
    finally:
        if deterministic:
            enable_op_determinism()


def _check_gpu_options(keras, load_config, build_modified_resnet50, compile_for_training, precision_policy):
    config = load_config("quick").replace(mixed_precision=True, xla=True)
    with precision_policy(config):
        model = build_modified_resnet50(4, 32, blocks=config.backbone_blocks)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the build
    assert model.get_layer("conv1_conv").compute_dtype == "float16"
    assert model.get_layer("predictions").compute_dtype == "float32" and model.outputs[0].dtype == "float32"
    compile_for_training(model, config)
    assert model.jit_compile is True
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    plain = build_modified_resnet50(4, 32, blocks=config.backbone_blocks)
    compile_for_training(plain, load_config("quick"))
    assert plain.jit_compile is False and plain.get_layer("conv1_conv").compute_dtype == "float32"


def test_the_training_step_is_traced_once_and_the_metrics_start_from_zero():
    import keras

    from liverlib.config import load_config
    from liverlib.train import compile_for_training

    def fitted(prebuild: bool):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3),
                                  keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4, activation="softmax")])
        if prebuild:
            compile_for_training(model, load_config("quick"))
        else:  # the same recipe, with Keras creating the metric variables inside the first step
            model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
        traces = []
        step = model.train_step
        model.train_step = lambda data: (traces.append(1), step(data))[1]
        rng = np.random.default_rng(0)
        x, y = rng.uniform(0, 1, (24, 16, 16, 3)).astype("float32"), rng.integers(0, 4, 24)
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
        return len(traces), history.history

    traces, history = fitted(prebuild=True)
    plain_traces, plain_history = fitted(prebuild=False)
    assert plain_traces == 2 and traces == 1  # Keras alone traces twice (variables made in the first call)
    # the dummy prediction used to create the variables leaves no trace in the reported loss and accuracy
    for key in ("loss", "accuracy"):
        assert history[key] == pytest.approx(plain_history[key], rel=1e-5), key


@pytest.mark.parametrize("bad", ["0", "-4", "sixteen"])
def test_train_refuses_a_batch_size_that_is_not_a_positive_whole_number(tmp_path, bad):
    proc = subprocess.run([sys.executable, "-m", "liverlib.cli", "train", "--profile", "quick", "--batch-size", bad],
                          capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert proc.returncode == 2 and "--batch-size" in proc.stderr and "at least 1" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------ datasets with other classes

def _class_folders(root, kinds, per_class=6, size=64):
    """One folder per class (folder name -> the phantom class drawn in it), 64 px PNGs, and a groups.csv with
    one patient per image, so the grouped split puts every class in every split."""
    from PIL import Image

    from liverlib.phantom import make_slice
    from liverlib.imaging.windowing import window_to_uint8

    rows = []
    for c, (folder, kind) in enumerate(kinds.items()):
        (root / folder).mkdir(parents=True)
        for k in range(per_class):
            grey = window_to_uint8(make_slice(kind, seed=1000 * c + k, size=size).hu, 40, 400)
            Image.fromarray(grey).save(root / folder / f"s{k}.png")
            rows.append((f"{folder}/s{k}.png", f"{folder}-p{k}"))
    pd.DataFrame(rows, columns=["file", "group"]).to_csv(root / "groups.csv", index=False)
    return root


@pytest.fixture(scope="module")
def other_class_runs(tmp_path_factory):
    """Two tiny one-epoch runs in this process: tumour/normal (2 classes) and HCC/Normal liver/steatosis (3)."""
    from liverlib.config import load_config
    from liverlib.data import scan_dataset
    from liverlib.splits import split_for
    from liverlib.train import train

    tmp = tmp_path_factory.mktemp("classes")
    config = load_config("quick", artifacts_dir=tmp / "artifacts").replace(epochs=1, image_size=32, batch_size=8)
    runs = {}
    for name, kinds, changes in (
            ("two", {"tumour": "malignant", "normal": "normal"}, {}),
            ("three", {"HCC": "malignant", "Normal liver": "normal", "steatosis": "cirrhosis"},
             {"class_weighting": True})):
        dataset = scan_dataset(_class_folders(tmp / name, kinds))
        run_config = config.replace(**changes)
        runs[name] = (dataset, run_config, train(run_config, split_for(dataset, run_config), verbose=0))
    return tmp, runs


def test_a_two_class_folder_trains_evaluates_and_classifies(other_class_runs):
    from liverlib.aggregate import normal_class_index
    from liverlib.classify import classify
    from liverlib.config import training_settings_key
    from liverlib.evaluate import evaluate_run
    from liverlib.widget import classify_widget

    tmp, runs = other_class_runs
    dataset, config, result = runs["two"]
    assert dataset.report.class_names == ["normal", "tumour"] and dataset.report.new_classes == ["tumour"]
    assert result.model.output_shape == (None, 2)
    # the model a finished run returns predicts as its model.keras does (one epoch: the one in memory is kept)
    from liverlib.runs import load_model

    x = np.random.default_rng(0).random((3, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(result.model.predict(x, verbose=0),
                               load_model(result.run_dir / "model.keras").predict(x, verbose=0), atol=1e-6)
    card = result.card
    assert card["class_names"] == ["normal", "tumour"] and card["normal_class"] == "normal"
    # another class set, another settings key and run folder; the four-class key is the one it always was
    key = training_settings_key(config, class_names=["normal", "tumour"])
    assert card["settings_sha256"] == key != training_settings_key(config)
    assert key[:8] in result.run_dir.name and result.run_dir.parent == tmp / "artifacts" / "runs"
    assert set(card["metrics"]) == {"val_accuracy", "val_balanced_accuracy", "val_macro_f1"}
    assert normal_class_index(card["class_names"], card) == 0

    evaluation = evaluate_run(result.run_dir, n_boot=20, figures=False)
    assert evaluation.class_names == ["normal", "tumour"] and np.array(evaluation.metrics["confusion_matrix"]).shape == (2, 2)
    assert set(evaluation.metrics["per_class"]) == {"normal", "tumour"} and "patient_level" in evaluation.metrics
    # an external folder with other spellings of the same classes
    external = _class_folders(tmp / "external", {"Tumour": "malignant", "NORMAL": "normal"}, per_class=2)
    outside = evaluate_run(result.run_dir, data_dir=external, n_boot=20, figures=False)
    assert outside.metrics["split"] == "external" and outside.metrics["n_images"] == 4

    png = (tmp / "two" / "tumour" / "s0.png").read_bytes()
    found = classify(png, "s0.png", result.run_dir)
    assert list(found.probabilities) == ["normal", "tumour"] and found.predicted_class in ("normal", "tumour")
    assert found.heatmap.shape == (32, 32)
    app = classify_widget(result.run_dir)
    app.process([("s0.png", png)])
    assert "tumour" in app.results.value and "normal" in app.results.value


def test_a_three_class_folder_with_an_unknown_name(other_class_runs):
    from liverlib.aggregate import aggregate, normal_class_index
    from liverlib.classify import classify
    from liverlib.train import model_card

    tmp, runs = other_class_runs
    dataset, config, result = runs["three"]
    assert dataset.report.class_names == ["malignant", "normal", "steatosis"]
    assert dataset.report.new_classes == ["steatosis"]
    assert dataset.report.synonyms == {"HCC": "malignant", "Normal liver": "normal"}
    assert "new classes (not among the paper's four): steatosis (folder 'steatosis')" in dataset.report.summary()
    assert result.model.output_shape == (None, 3)
    card = result.card
    assert card["class_names"] == ["malignant", "normal", "steatosis"] and card["normal_class"] == "normal"
    assert {str(k) for k in card["class_weights"]} == {"0", "1", "2"}  # balanced weights over the three classes
    assert result.run_dir != runs["two"][2].run_dir
    png = (tmp / "three" / "steatosis" / "s1.png").read_bytes()
    assert list(classify(png, "s1.png", result.run_dir, gradcam=False).probabilities) == card["class_names"]
    # a class set without a normal class: the card says so, and study aggregation falls back to the mean
    manifest = pd.DataFrame({"class": ["cyst", "steatosis"] * 2, "split": ["train", "val"] * 2, "synthetic": False,
                             "sha256": list("abcd")})
    plain = model_card(config, manifest, pd.DataFrame(), {}, "random initialisation", None, "0" * 64)
    assert plain["class_names"] == ["cyst", "steatosis"] and plain["normal_class"] is None
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert aggregate(probs, "top-k", normal_class_index(plain["class_names"], plain))[1] == "mean"


def test_the_cli_parser_reads_no_environment_so_a_bad_data_folder_is_reported_by_the_command(monkeypatch):
    from liverlib.cli import build_parser
    from liverlib.config import profiles_with

    monkeypatch.setenv("LIVERLIB_DATA_DIR", "/no/such/folder")  # what `liverlib phantom` may be about to create
    args = build_parser().parse_args(["phantom", "--out", "x"])  # the help texts need the profiles, not the data
    assert args.command == "phantom"
    assert profiles_with("balanced_sampling") == ("laptop",) and profiles_with("class_weighting") == ()
