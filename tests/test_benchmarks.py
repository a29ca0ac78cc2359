"""Benchmarks in smoke mode (tiny inputs: they only check the benchmarks work), and the figures' bookkeeping.

Speed targets are never asserted here: they live in benchmarks/results (``make bench``).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from liverlib.performance import TARGETS, gpu_estimates, gpu_runs_table, load_results, summary, targets_table

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def _smoke(name: str) -> dict:
    return json.loads((RESULTS / f"{name}_smoke.json").read_text())


@pytest.mark.benchmark
@pytest.mark.slow
def test_every_benchmark_runs_in_smoke_mode(tmp_path):
    env = {"LIVERLIB_ARTIFACTS_DIR": str(tmp_path / "artifacts"), "PATH": "/usr/bin:/bin"}
    for command in (["benchmarks.run_all", "--smoke"],
                    ["benchmarks.gpu_training_step", "--smoke", "--results", str(tmp_path)],
                    ["benchmarks.course_cost", "--smoke"], ["benchmarks.process_order", "--smoke"]):
        proc = subprocess.run([sys.executable, "-m", *command], cwd=REPO, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    phantom = _smoke("phantom_speed")
    assert phantom["slices_per_s"] > 0 and phantom["n_slices"] == 60
    pipeline = _smoke("pipeline")
    for key in ("ours_augmented", "imagedatagenerator_augmented", "ours_plain", "ours_augmented_1_thread"):
        assert pipeline[key]["first_epoch"] > 0 and len(pipeline[key]["epochs_images_per_s"]) == 2
    assert len(pipeline["ours_augmented"]["first_epochs_images_per_s"]) == 3  # three fresh pipelines
    assert pipeline["decode_ceiling_2_threads"] > 0 and pipeline["load_resized_ms_per_image"] > 0
    # the paper's loader reads the same images as ours: the class folders only, not the phantom's masks/
    assert pipeline["imagedatagenerator_augmented"]["images_the_loader_found"] == pipeline["n_images"]
    latency = _smoke("classify_latency")
    assert latency["max_abs_difference_vs_keras"] <= 1e-5
    assert latency["matmul"]["gflops_median"] > 0 and latency["forward_fraction_of_matmul"] > 0
    assert 0 < latency["forward_litert"]["median_ms"] <= latency["forward_litert"]["p95_ms"]
    training = _smoke("training_speed")
    assert {r["loop"] for r in training["throughput"]} == {"ours", "paper"}
    for r in training["throughput"] + training["sweep"]:
        assert "error" not in r, r
        assert r["images_per_s_min"] <= r["images_per_s_median"] <= r["images_per_s_max"]
        assert r["fraction_of_matmul"] > 0
        assert r["images_the_loader_found"] == r["images_in_dataset"]
    assert set(training["scaling"]["epochs"]) == {"40", "80"}
    gpu = json.loads((tmp_path / "gpu_training_step_smoke.json").read_text())
    (run,) = gpu["runs"]
    assert gpu["device"] and run["timed_epochs"] == 2 and run["steps_per_epoch"] == 2
    assert 0 < run["images_per_s_min"] <= run["images_per_s_median"] <= run["images_per_s_max"]
    assert run["matmul"]["float32_tflops"] > 0 and run["fraction_of_matmul"] > 0
    order = _smoke("process_order")
    assert [p["loop"] for p in order["processes"]] == ["ours", "paper"]
    assert all("error" not in p and p["images_per_s_median"] > 0 for p in order["processes"])
    assert order["processes"][-1]["pretouch_seconds"] > 0 and order["spread_max_over_min"] >= 1


def test_gpu_results_keep_one_run_per_setting_and_start_afresh_on_another_device(tmp_path):
    from benchmarks.gpu_training_step import merge

    path = tmp_path / "gpu.json"
    h100 = {"device": "NVIDIA H100 80GB HBM3"}
    run = {"keras_backend": "jax", "size": 224, "batch": 46, "mixed_precision": False, "jit_compile": True}
    merge(path, {**run, "images_per_s_median": 1.0}, h100)
    merge(path, {**run, "mixed_precision": True, "images_per_s_median": 2.0}, h100)
    data = merge(path, {**run, "images_per_s_median": 3.0}, h100)  # same settings again: replaces the first
    assert [r["images_per_s_median"] for r in data["runs"]] == [2.0, 3.0]
    data = merge(path, {**run, "images_per_s_median": 4.0}, {"device": "NVIDIA A100"})
    assert data["device"] == "NVIDIA A100" and [r["images_per_s_median"] for r in data["runs"]] == [4.0]


def test_recipe_seeds_keeps_the_recorded_runs_when_its_folder_is_gone(tmp_path, monkeypatch):
    """A fresh clone has the committed recipe_seeds.json but no artifacts: a restarted queue must add its runs
    to the recorded ones (not drop them) and must not train a recorded run again."""
    from benchmarks import recipe_seeds

    monkeypatch.setattr(recipe_seeds, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(recipe_seeds, "seeds_dir", lambda smoke=False: tmp_path / "seeds")
    (tmp_path / "seeds").mkdir()

    def record(recipe, seed, f1):
        return {"recipe": recipe, "seed": seed, "test_macro_f1": f1, "test_balanced_accuracy": f1}

    recipe_seeds.RESULTS.mkdir()
    recipe_seeds.result_path().write_text(json.dumps({"runs": {
        "class-weights": [record("class-weights", 42, 0.3)], "nocrop-128": [record("nocrop-128", 42, 0.4)]}}))
    (tmp_path / "seeds" / "nocrop-128-seed43.json").write_text(json.dumps(record("nocrop-128", 43, 0.6)))
    (tmp_path / "seeds" / "class-weights-seed42.json").write_text(json.dumps(record("class-weights", 42, 0.5)))
    data = json.loads(recipe_seeds.merge().read_text())
    assert [(r["seed"], r["test_macro_f1"]) for r in data["runs"]["nocrop-128"]] == [(42, 0.4), (43, 0.6)]
    assert data["runs"]["class-weights"] == [record("class-weights", 42, 0.5)]  # the folder's run replaces it
    assert data["summary"]["nocrop-128"]["n"] == 2 and abs(data["summary"]["nocrop-128"]["test_macro_f1_mean"] - 0.5) < 1e-9
    assert recipe_seeds.recorded_runs(smoke=True) == {}  # smoke runs never read the full runs' file
    trained = []
    monkeypatch.setattr(recipe_seeds.subprocess, "call", lambda cmd: trained.append(cmd[-2:]) or 0)
    recipe_seeds.main(["--recipes", "nocrop-128", "--seeds", "42,43,44"])
    assert trained == [["nocrop-128", "44"]]


def test_recipe_ablation_keeps_the_recorded_recipes_when_its_folder_is_gone(tmp_path, monkeypatch):
    """The same for the lever ablation: a recipe rerun in a fresh clone joins the recorded recipes (and reads
    the warm-up peak recorded for them) instead of rewriting the result file with itself alone."""
    from benchmarks import recipe_ablation

    monkeypatch.setattr(recipe_ablation, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(recipe_ablation, "ablation_dir", lambda: tmp_path / "ablation")
    (tmp_path / "ablation").mkdir()
    recipe_ablation.RESULTS.mkdir()
    recipe_ablation.result_path().write_text(json.dumps({"recipes": {
        "crop": {"recipe": "crop", "test_macro_f1": 0.2},
        "warmup-lr": {"recipe": "warmup-lr", "test_macro_f1": 0.25, "peak_learning_rate": 0.0006}}}))
    (tmp_path / "ablation" / "crop.json").write_text(json.dumps({"recipe": "crop", "test_macro_f1": 0.3}))
    (tmp_path / "ablation" / "baseline.json").write_text(json.dumps({"recipe": "baseline", "test_macro_f1": 0.1}))
    data = json.loads(recipe_ablation.merge().read_text())
    assert list(data["recipes"]) == ["baseline", "crop", "warmup-lr"]  # the order of RECIPES
    assert data["recipes"]["crop"]["test_macro_f1"] == 0.3  # the folder's record replaces the recorded one
    assert recipe_ablation.finished_recipes()["warmup-lr"]["peak_learning_rate"] == 0.0006
    assert set(recipe_ablation.finished_recipes(smoke=True)) == {"baseline", "crop"}  # smoke: its folder only
    trained = []
    monkeypatch.setattr(recipe_ablation.subprocess, "call", lambda cmd: trained.append(cmd[cmd.index("--one") + 1]) or 0)
    recipe_ablation.main(["--recipes", "crop,warmup-lr,balanced-sampling"])
    assert trained == ["balanced-sampling"]
    assert set(json.loads(recipe_ablation.result_path().read_text())["recipes"]) == {"baseline", "crop", "warmup-lr"}


def test_the_ceiling_keeps_one_run_per_input_and_seed_and_renames_runs_recorded_before_seeds(tmp_path, monkeypatch):
    from benchmarks import common, phantom_ceiling

    monkeypatch.setattr(phantom_ceiling, "RESULTS", tmp_path)
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    old = {"crop": "liver", "input_size": 64, "test_macro_f1": 0.6}  # a run of the time before seeds
    (tmp_path / "phantom_ceiling.json").write_text(json.dumps({"runs": {
        "liver-64px": old, "none-64px": {**old, "crop": "none", "test_macro_f1": 0.4}}}))

    def measure(size, crop, epochs, patience, seeds, smoke=False):
        for seed in seeds:
            yield {"crop": crop, "input_size": size, "seed": seed, "test_macro_f1": 0.5 + seed / 100}

    monkeypatch.setattr(phantom_ceiling, "measure", measure)
    phantom_ceiling.main(["--sizes", "64", "--crops", "liver", "--seeds", "0,1"])
    runs = json.loads((tmp_path / "phantom_ceiling.json").read_text())["runs"]
    assert sorted(runs) == ["liver-64px-seed0", "liver-64px-seed1", "none-64px-seed0"]
    assert runs["liver-64px-seed0"]["test_macro_f1"] == 0.5  # the new seed-0 run replaced the old one
    assert runs["none-64px-seed0"]["test_macro_f1"] == 0.4  # not measured again: kept, under its seed's name


def _fake_results() -> dict:
    return {
        "pipeline": {"speedup_vs_imagedatagenerator": {"first_epoch": 2.0, "cached_epochs": 12.0},
                     "ours_augmented": {"cached_epochs": 900.0}},
        "training_speed": {"train_images_per_s_224": 3.0, "train_fraction_of_matmul_224": 0.4},
        "classify_latency": {"forward_ms": 50.0, "speedup_vs_predict": 3.6},
        "phantom_speed": {"slices_per_s": 50.0},
        "course_cost": {"make_test": {"minutes": 16.5}},
    }


def test_summary_takes_each_figure_from_its_benchmark_and_leaves_missing_ones_null():
    figures = summary(_fake_results())
    assert set(figures) == set(TARGETS)
    assert figures["pipeline_over_training_throughput"] == pytest.approx(300.0)  # 900 / 3, same run
    assert figures["pipeline_speedup_vs_imagedatagenerator"] == 12.0  # cached epochs, as training runs
    assert figures["classify_forward_ms_224"] == 50.0 and figures["make_test_minutes"] == 16.5
    assert figures["make_book_minutes"] is None
    table = targets_table(figures)
    assert table.loc["classify_forward_ms_224", "met"] == "yes"  # 50 <= 70
    assert table.loc["train_fraction_of_matmul_224", "met"] == "no"  # 0.4 < 0.5
    assert table.loc["make_book_minutes", "met"] == ""


def test_results_files_are_read_without_the_smoke_ones(tmp_path):
    (tmp_path / "pipeline.json").write_text(json.dumps({"a": 1}))
    (tmp_path / "pipeline_smoke.json").write_text(json.dumps({"a": 2}))
    (tmp_path / "summary.json").write_text(json.dumps({}))
    assert load_results(tmp_path) == {"pipeline": {"a": 1}}


def test_gpu_estimate_is_images_times_epochs_over_rate():
    table = gpu_estimates(3320, 80, measured_cpu_images_per_s=2.9, rates={"some GPU": 2400.0})
    assert table.loc["some GPU", "hours_total"] == pytest.approx(3320 * 80 / 2400 / 3600)
    assert table.iloc[-1]["hours_total"] == pytest.approx(3320 * 80 / 2.9 / 3600)


def test_measured_gpu_runs_become_rows_of_the_estimate_and_of_the_table():
    run = {"keras_backend": "jax", "size": 224, "batch": 46, "mixed_precision": True, "jit_compile": True,
           "images_per_s_median": 2000.0, "images_per_s_min": 1900.0, "images_per_s_max": 2100.0,
           "achieved_tflops": 49.2, "fraction_of_matmul": 0.07, "first_epoch_seconds": 30.0}
    gpu = {"device": "NVIDIA H100", "runs": [run, {**run, "batch": 256, "images_per_s_median": 5000.0},
                                             {**run, "size": 64, "images_per_s_median": 9000.0}]}
    table = gpu_estimates(3320, 80, rates={}, measured_gpu=gpu)
    assert list(table.index) == ["NVIDIA H100, jax, mixed precision, batch 46 (measured)",
                                 "NVIDIA H100, jax, mixed precision, batch 256 (measured)"]  # 224 px only
    assert table.iloc[0]["hours_total"] == pytest.approx(3320 * 80 / 2000 / 3600)
    runs = gpu_runs_table(gpu)
    assert list(runs["images_per_s"]) == [9000.0, 5000.0, 2000.0] and runs.loc[2, "precision"] == "mixed float16"
    assert gpu_runs_table({}).empty


RECIPE_SMOKE = """
import sys
from benchmarks import (before_after, liver_crop, phantom_ceiling, recipe_ablation, recipe_seeds, study_latency,
                        study_liver_slices, study_rules)
seeds_run = sys.argv[1]  # recipe_seeds' first run, which before_after scores as "after"
for module, extra in ((liver_crop, []), (recipe_ablation, []), (recipe_seeds, []),
                      (before_after, ["--after", seeds_run]), (phantom_ceiling, []), (study_latency, []),
                      (study_liver_slices, []), (study_rules, [])):
    module.main(["--smoke", *extra])
    print("==== done:", module.__name__, flush=True)
"""


@pytest.mark.benchmark
@pytest.mark.slow
def test_the_recipe_crop_and_study_benchmarks_run_in_smoke_mode(tmp_path):
    """The training-recipe work (liver crop, lever ablation) and the whole-study benchmarks, on tiny inputs."""
    env = {"LIVERLIB_ARTIFACTS_DIR": str(tmp_path / "artifacts"), "PATH": "/usr/bin:/bin"}
    seeds_run = tmp_path / "artifacts" / "recipe-seeds-smoke" / "balanced-sampling-seed42"  # before_after scores it as "after"
    # one process runs them in turn (each --smoke, as `python -m benchmarks.NAME --smoke`): TensorFlow is
    # imported once, not eight times
    proc = subprocess.run([sys.executable, "-c", RECIPE_SMOKE, str(seeds_run)], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.count("==== done") == 8, proc.stdout[-2000:]
    crop = _smoke("liver_crop")
    assert set(crop["small_cnn"]) == {"none", "body", "liver"}
    for view, read in crop["crop_quality"]["orientation_read_right"].items():
        assert 0 <= read["left_right"] <= 1, view
    ablation = _smoke("recipe_ablation")["recipes"]
    assert set(ablation) == {"crop"}
    for record in ablation.values():
        assert len(record["history"]) == 1 and 0 <= record["test_macro_f1"] <= 1
        assert record["test_macro_f1_ci95"][0] <= record["test_macro_f1"] <= record["test_macro_f1_ci95"][1] + 1e-9
    assert ablation["crop"]["settings"]["crop"] == "liver"
    seeds = _smoke("recipe_seeds")
    (run,) = seeds["runs"]["balanced-sampling"]  # the first recipe (the profile's), the first seed, one quick epoch
    assert run["seed"] == 42 and run["epochs_run"] == run["kept_epoch"] == 1 and run["kept_by"] == "val_macro_f1"
    low, high = run["test_macro_f1_ci95"]
    assert low <= run["test_macro_f1"] <= high + 1e-9 and set(run["test_f1_per_class"]) == {
        "benign", "cirrhosis", "malignant", "normal"}
    assert run["settings"] == {"balanced_sampling": True, "class_weighting": False}
    assert seeds["summary"]["balanced-sampling"]["n"] == 1 and seeds["summary"]["balanced-sampling"]["test_macro_f1_sd"] is None
    changed = _smoke("before_after")["runs"]
    assert list(changed) == ["before", "after"] and changed["after"]["run"] == "balanced-sampling-seed42"
    assert changed["before"]["settings"]["crop"] == "none" and changed["after"]["settings"]["crop"] == "liver"
    assert changed["before"]["settings"]["checkpoint_metric"] == "val_loss"
    for run in changed.values():
        assert 0 < run["pointing_game"]["slices"] <= 20 and 0 <= run["pointing_game"]["hit_rate"] <= 1
        assert sum(b["slices"] for b in run["by_lesion_size"]) > 0
    ceiling = _smoke("phantom_ceiling")["runs"]["liver-32px-seed0"]
    low, high = ceiling["test_macro_f1_ci95"]
    assert low <= ceiling["test_macro_f1"] <= high + 1e-9 and 1 <= ceiling["best_epoch"] <= ceiling["max_epochs"]
    assert set(ceiling["images"]) == {"train", "val", "test"} and min(ceiling["images"].values()) > 0
