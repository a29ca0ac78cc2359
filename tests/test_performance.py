"""liverlib.performance turns the benchmark files into the performance chapter's tables and glued numbers."""

import json

import pytest

from liverlib import facts, performance
from liverlib.config import load_config

PIPELINE = {
    "ours_augmented": {"first_epoch": 150.0, "first_epoch_min": 140.0, "first_epoch_max": 160.0,
                       "cached_epochs": 900.0, "cached_epochs_min": 700.0, "cached_epochs_max": 1000.0},
    "imagedatagenerator_augmented": {"first_epoch": 50.0, "cached_epochs": 50.0},
    "speedup_vs_imagedatagenerator": {"first_epoch": 3.0, "cached_epochs": 18.0, "first_epoch_ceiling": 7.0},
    "decode_ceiling_2_threads": 300.0,
    "load_resized_ms_per_image": 4.5,
    "machine": {"date": "2026-01-02T03:04:05+00:00", "cpu": "Test CPU", "cores": 2,
                "versions": {"tensorflow-cpu": "2.20.0"}},
}
TRAINING = {
    "matmul": {"gflops_median": 100.0, "gflops_min": 80.0, "gflops_max": 120.0},
    "throughput": [{"size": 224, "batch": 46, "loop": "ours", "images_per_s_median": 2.0, "images_per_s_min": 1.5,
                    "images_per_s_max": 2.5, "gflops": 49.2, "fraction_of_matmul": 0.49, "first_steps_seconds": 90}],
    "sweep": [{"size": 64, "batch": 32, "loop": "ours", "images_per_s_median": 20.0},
              {"size": 64, "batch": 32, "loop": "ours", "threads": 1, "images_per_s_median": 15.0},
              {"size": 64, "batch": 64, "loop": "ours", "images_per_s_median": 22.0}],
    "scaling": {"epochs": {"1000": {"epoch_seconds": 50.0, "images_per_s": 20.0},
                           "2000": {"epoch_seconds": 100.0, "images_per_s": 20.0}}},
    "train_images_per_s_224": 2.0, "train_fraction_of_matmul_224": 0.49,
}
ORDER = {"idle_seconds": 60, "pretouch_gib": 10, "spread_max_over_min": 1.25,
         "processes": [{"order": 1, "loop": "ours", "images_per_s_median": 2.0},
                       {"order": 2, "loop": "ours", "images_per_s_median": 2.5},
                       {"order": 3, "loop": "ours", "images_per_s_median": 2.2}]}
LATENCY = {"forward_ms": 100.0, "forward_backend": "LiteRT", "forward_fraction_of_matmul": 0.9,
           "speedup_vs_predict": 4.0, "matmul": {"gflops_median": 90.0},
           "forward_litert": {"median_ms": 100.0, "p95_ms": 120.0}, "naive_predict": {"median_ms": 400.0, "p95_ms": 450.0},
           "target_forward_ms": 70}
COURSE = {"make_test": {"command": "make test", "minutes": 12.0, "target_minutes": 20.0, "exit_code": 0,
                        "commit": "0123456789abcdef", "stages_seconds": {"setup": 100.0, "unit tests": 500.0}},
          "make_book": {"command": "make book", "minutes": 40.0, "target_minutes": 45.0, "exit_code": 0,
                        "commit": "fedcba9876543210", "stages_seconds": {"setup": 200.0, "notebook 04": 1200.0}}}
GPU = {"device": "Test GPU", "runs": [
    {"keras_backend": "jax", "size": 224, "batch": 46, "mixed_precision": False, "images_per_s_median": 2000.0,
     "fraction_of_matmul": 0.13, "matmul": {"float32_tflops": 400.0}, "date": "2026-01-01T00:00:00Z"},
    {"keras_backend": "jax", "size": 224, "batch": 46, "mixed_precision": True, "images_per_s_median": 2400.0,
     "fraction_of_matmul": 0.08, "matmul": {"float32_tflops": 380.0}, "date": "2026-01-01T00:01:00Z"},
    {"keras_backend": "jax", "size": 224, "batch": 256, "mixed_precision": True, "images_per_s_median": 5000.0,
     "fraction_of_matmul": 0.18, "matmul": {"float32_tflops": 390.0}, "date": "2026-01-01T00:02:00Z"},
    {"keras_backend": "torch", "size": 224, "batch": 46, "mixed_precision": True, "images_per_s_median": 240.0,
     "fraction_of_matmul": 0.01, "matmul": {"float32_tflops": 50.0}, "date": "2026-01-01T00:03:00Z"}]}


@pytest.fixture
def results_dir(tmp_path):
    files = {"pipeline": PIPELINE, "training_speed": TRAINING, "process_order": ORDER, "classify_latency": LATENCY,
             "course_cost": COURSE, "gpu_training_step": GPU, "make_bench": {"total_minutes": 31.0}}
    for name, content in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(content))
    return tmp_path


def test_tables_pick_each_benchmarks_rows():
    loaders = performance.pipeline_table(PIPELINE)
    assert list(loaders.index) == ["ours augmented", "imagedatagenerator augmented"]  # not the speed-up ratios
    assert loaders.loc["ours augmented", "cached spread"] == "700-1000"
    assert loaders.loc["imagedatagenerator augmented", "first-epoch spread"] == "50-50"
    assert list(performance.process_order_table(ORDER)["images_per_s_median"]) == [2.0, 2.5, 2.2]
    assert performance.throughput_table(TRAINING).loc[0, "min-max over steps"] == "1.50-2.50"
    sweep = performance.sweep_table(TRAINING)
    assert list(sweep["change from the defaults"]) == ["none (defaults)", "threads=1", "batch=64"]
    assert list(performance.scaling_table(TRAINING).index) == [1000, 2000]
    assert set(performance.latency_table(LATENCY).index) == {"forward_litert", "naive_predict"}
    cost = performance.course_cost_table(COURSE)
    assert list(cost.index) == ["make test", "make book"] and cost.loc["make test", "commit"] == "0123456789"
    stages = performance.course_stages(COURSE)
    assert list(stages.index) == ["setup", "unit tests", "notebook 04"]  # in the order they ran
    assert stages.loc["setup", "make book"] == 200.0
    assert performance.course_cost_table({}).empty and performance.process_order_table({}).empty


def test_measured_on_names_the_machine_and_date_of_every_file():
    table = performance.measured_on({"pipeline": PIPELINE, "gpu_training_step": GPU})
    assert table.loc["pipeline", "measured"] == "2026-01-02 03:04" and table.loc["pipeline", "machine"] == "Test CPU"
    assert table.loc["gpu_training_step", "machine"] == "Test GPU"
    assert table.loc["gpu_training_step", "measured"] == "2026-01-01 00:03"  # the latest run


def test_training_hours_are_epochs_times_images_over_rate():
    paper = load_config("paper")
    assert performance.training_images(paper) == round(paper.phantom_n * paper.split_fractions[0])
    hours = performance.training_hours(1000.0, paper)
    assert hours == pytest.approx(paper.epochs * performance.training_images(paper) / 1000.0 / 3600)
    with pytest.raises(ValueError):
        performance.training_hours(0, paper)


def test_chapter_facts_read_the_files_and_derive_from_them(results_dir):
    f = performance.chapter_facts(results_dir)
    assert all(isinstance(v, facts.Fact) for v in f.values())
    assert f["pipeline_cached"] == "900" and f["pipeline_cached"].key == "pipeline.ours_augmented.cached_epochs"
    assert f["first_epoch_verdict"] == "falls short of"  # 3.0 against the 5x target
    assert f["first_epoch_share_of_ceiling"] == "50%"  # 150 of 300 images/s
    assert f["pipeline_over_training"] == "450"  # 900 / 2.0
    assert f["order_rates"] == "2.00, 2.50 and 2.20" and f["order_spread"] == "25%"
    assert f["order_first"] == "the slowest"
    assert f["forward_verdict"] == "misses" and f["forward_needed_matmul"] == f"{90 * 100 / 70:.0f}"
    assert f["gpu_b46_f32"] == "2,000" and f["gpu_b46_mixed"] == "2,400" and f["gpu_b256_mixed"] == "5,000"
    assert (f["gpu_b46_share_low"], f["gpu_b46_share_high"]) == ("8%", "13%")
    assert f["jax_over_torch"] == "10" and f["torch_f32_tflops"] == "50" and f["gpu_date"] == "2026-01-01"
    paper = load_config("paper")
    assert f["paper_minutes_at_gpu"].value == pytest.approx(performance.training_hours(2400.0, paper) * 60)


def test_chapter_facts_say_what_was_not_measured(tmp_path):
    f = performance.chapter_facts(tmp_path)  # an empty results folder: the page still builds
    assert f["pipeline_cached"] == "(not measured)" and f["gpu_b46_share_low"] == "(not measured)"
    assert f["order_first"] == "(not measured)" and f["paper_train_images"] != "(not measured)"


def test_chapter_facts_of_the_committed_results_match_their_files():
    folder = facts.results_dir()
    if folder is None or not (folder / "pipeline.json").is_file():
        pytest.skip("no benchmark results in this checkout")
    f = performance.chapter_facts()
    pipeline = json.loads((folder / "pipeline.json").read_text())
    assert f["pipeline_cached"].value == pipeline["ours_augmented"]["cached_epochs"]
    assert f["bench_minutes"] != "(not measured)"
