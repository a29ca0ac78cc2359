"""The recipe ablation's table and class shares, read from a tiny result file the test writes."""

import json

import numpy as np
import pytest

from liverlib.ablation import (ablation_table, before_after, ceiling_table, changes, paired_seeds, predicted_shares,
                               seed_runs, seeds_table)
from liverlib.errors import LiverlibError

BASE = {"crop": "none", "image_size": 64, "bn_momentum": 0.99, "schedule": "constant"}


def _record(settings, f1, ci, shares, **extra):
    history = [{"epoch": e + 1, "val_predicted_share": s} for e, s in enumerate(shares)]
    return {"settings": settings, "epochs": len(shares), "best_epoch": len(shares), "test_macro_f1": f1,
            "test_macro_f1_ci95": ci, "test_balanced_accuracy": 0.25, "seconds": 12.5, "history": history, **extra}


@pytest.fixture
def result_file(tmp_path):
    all_benign = {"benign": 1.0, "cirrhosis": 0.0, "malignant": 0.0, "normal": 0.0}
    mixed = {"benign": 0.5, "cirrhosis": 0.1, "malignant": 0.3, "normal": 0.1}
    recipes = {
        "baseline": _record(BASE, 0.19, [0.17, 0.21], [all_benign, all_benign]),
        "crop": _record({**BASE, "crop": "liver"}, 0.19, [0.17, 0.21], [all_benign, all_benign]),
        "bn-momentum-0.9": _record({**BASE, "crop": "liver", "bn_momentum": 0.9}, 0.35, [0.3, 0.4],
                                   [mixed, all_benign]),
        "warmup-lr": _record({**BASE, "crop": "liver", "schedule": "warmup-cosine"}, 0.3, [0.25, 0.33],
                             [mixed], peak_learning_rate=3e-4),
        "crop+bn+warmup": _record({**BASE, "crop": "liver", "bn_momentum": 0.9, "schedule": "warmup-cosine"},
                                  0.4, [0.35, 0.45], [mixed]),
        "nocrop-128": _record({**BASE, "image_size": 128}, 0.2, None, [mixed]),
    }
    path = tmp_path / "recipe_ablation.json"
    path.write_text(json.dumps({"recipes": recipes, "note": "reduced budget"}))
    return path


def test_each_recipe_is_compared_with_its_closest_earlier_recipe(result_file):
    table = ablation_table(result_file)
    assert list(table.index) == ["baseline", "crop", "bn-momentum-0.9", "warmup-lr", "crop+bn+warmup", "nocrop-128"]
    assert table.loc["baseline", "lever"] == "the starting point"
    assert table.loc["crop", "lever"] == "crop none -> liver"
    assert table.loc["bn-momentum-0.9", "compared with"] == "crop"
    assert table.loc["bn-momentum-0.9", "lever"] == "batch-norm momentum 0.99 -> 0.9"
    # warmup-lr differs from crop in one setting, from bn-momentum-0.9 in two
    assert table.loc["warmup-lr", "compared with"] == "crop"
    assert table.loc["warmup-lr", "lever"].startswith("learning-rate schedule constant -> warmup-cosine (peak rate 3.0e-04")
    # a tie (one change from bn-momentum-0.9 and from warmup-lr): the latest
    assert table.loc["crop+bn+warmup", "compared with"] == "warmup-lr"
    assert table.loc["nocrop-128", "compared with"] == "baseline"
    assert table.loc["nocrop-128", "lever"] == "input size 64 -> 128"


def test_the_table_carries_the_figures_and_intervals(result_file):
    table = ablation_table(result_file)
    row = table.loc["bn-momentum-0.9"]
    assert (row["test macro-F1"], row["CI low"], row["CI high"]) == (0.35, 0.3, 0.4)
    assert row["balanced accuracy"] == 0.25 and row["best epoch"] == 2 and row["epochs"] == 2 and row["seconds"] == 12.5
    assert np.isnan(table.loc["nocrop-128", "CI low"])  # no interval recorded


def test_predicted_shares_per_epoch(result_file):
    shares = predicted_shares("bn-momentum-0.9", result_file)
    assert list(shares.index) == [1, 2] and shares.index.name == "epoch"
    assert shares.loc[1, "malignant"] == 0.3 and shares.loc[2, "benign"] == 1.0
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    with pytest.raises(LiverlibError, match="no recipe 'size-96'"):
        predicted_shares("size-96", result_file)


def test_a_missing_file_says_how_to_make_it(tmp_path):
    with pytest.raises(LiverlibError, match="recipe_ablation"):
        ablation_table(tmp_path / "nothing.json")


def test_changes_lists_every_setting_that_differs():
    assert changes({**BASE, "crop": "liver", "bn_momentum": 0.9}, BASE) == ["crop none -> liver",
                                                                           "batch-norm momentum 0.99 -> 0.9"]
    assert changes(BASE, BASE) == []


def test_the_share_figure_draws_the_numbers(result_file):
    from liverlib.plots import predicted_share_figure

    shares = {name: predicted_shares(name, result_file) for name in ("baseline", "bn-momentum-0.9")}
    fig = predicted_share_figure(shares)
    assert len(fig.axes) == 2
    heights = sorted(p.get_height() for p in fig.axes[0].patches)
    assert heights[-2:] == [1.0, 1.0]  # all benign in both epochs of the baseline


def test_the_ceiling_table_reads_each_run_and_refuses_a_bad_file(tmp_path):
    run = {"crop": "liver", "input_size": 64, "seed": 0, "test_macro_f1": 0.71, "test_macro_f1_ci95": [0.6, 0.8],
           "train_macro_f1": 0.95, "best_epoch": 23, "max_epochs": 60, "train_seconds": 300.0}
    path = tmp_path / "phantom_ceiling.json"
    old_style = {k: v for k, v in run.items() if k != "seed"}  # recorded before seeds: the default seed, 0
    path.write_text(json.dumps({"runs": {
        "liver-64px-seed0": run, "liver-64px-seed1": {**run, "seed": 1, "test_macro_f1": 0.65},
        "none-64px": {**old_style, "crop": "none", "test_macro_f1": 0.5, "test_macro_f1_ci95": None}}}))
    table = ceiling_table(path)
    assert list(table.index) == ["liver-64px-seed0", "liver-64px-seed1", "none-64px"]
    assert list(table["input"]) == ["liver-64px", "liver-64px", "none-64px"] and list(table["seed"]) == [0, 1, 0]
    assert table.groupby("input")["test macro-F1"].mean()["liver-64px"] == pytest.approx(0.68)
    assert table.loc["liver-64px-seed0", "test macro-F1"] == 0.71 and table.loc["liver-64px-seed0", "CI high"] == 0.8
    assert table.loc["liver-64px-seed0", "best epoch"] == 23 and table.loc["none-64px", "crop"] == "none"
    assert table.loc["none-64px", "CI low"] is None or np.isnan(table.loc["none-64px", "CI low"])
    path.write_text("{not json")
    with pytest.raises(LiverlibError, match="not a ceiling result"):
        ceiling_table(path)
    path.write_text(json.dumps({"runs": {}}))
    with pytest.raises(LiverlibError, match="holds no runs"):
        ceiling_table(path)
    with pytest.raises(LiverlibError, match="no ceiling results"):
        ceiling_table(tmp_path / "missing.json")


def test_the_peak_rate_is_named_only_where_the_schedule_is_the_lever(tmp_path):
    stack = {**BASE, "crop": "liver", "bn_momentum": 0.9, "schedule": "warmup-cosine"}
    mixed = {"benign": 0.5, "cirrhosis": 0.1, "malignant": 0.3, "normal": 0.1}
    recipes = {"crop": _record({**BASE, "crop": "liver"}, 0.2, [0.1, 0.3], [mixed]),
               "stack": _record(stack, 0.3, [0.2, 0.4], [mixed], peak_learning_rate=6e-4),
               "balanced": _record({**stack, "sampling": "balanced"}, 0.3, [0.2, 0.4], [mixed], peak_learning_rate=6e-4)}
    path = tmp_path / "recipe_ablation.json"
    path.write_text(json.dumps({"recipes": recipes}))
    table = ablation_table(path)
    assert "peak rate 6.0e-04" in table.loc["stack", "lever"]
    assert table.loc["balanced", "lever"] == "sampling none -> balanced"


def test_the_seeds_table_summarises_each_recipe_over_its_seeds_and_refuses_a_bad_file(tmp_path):
    def run(seed, f1, balanced):
        return {"seed": seed, "test_macro_f1": f1, "test_balanced_accuracy": balanced}

    path = tmp_path / "recipe_seeds.json"
    path.write_text(json.dumps({"runs": {"class-weights": [run(42, 0.30, 0.40), run(43, 0.40, 0.50)],
                                         "balanced-sampling": [run(42, 0.50, 0.60)]}}))
    table = seeds_table(path)
    assert list(table.index) == ["class-weights", "balanced-sampling"]  # in the file's order
    laptop = table.loc["class-weights"]
    assert laptop["seeds"] == 2 and laptop["test macro-F1 mean"] == pytest.approx(0.35)
    assert laptop["sd"] == pytest.approx(0.0707, abs=1e-4) and (laptop["min"], laptop["max"]) == (0.30, 0.40)
    assert laptop["balanced accuracy mean"] == pytest.approx(0.45) and laptop["per seed"] == "42: 0.30, 43: 0.40"
    assert np.isnan(table.loc["balanced-sampling", "sd"])  # one seed has no spread
    path.write_text(json.dumps({"runs": {}}))
    with pytest.raises(LiverlibError, match="holds no runs"):
        seeds_table(path)
    path.write_text("[1, 2]")
    with pytest.raises(LiverlibError, match="not a result"):
        seeds_table(path)
    with pytest.raises(LiverlibError, match="benchmarks.recipe_seeds"):
        seeds_table(tmp_path / "missing.json")


def test_seed_runs_list_every_run_and_the_figure_draws_each_with_its_interval(tmp_path):
    from liverlib.plots import seed_runs_figure

    def run(seed, f1, ci):
        return {"seed": seed, "test_macro_f1": f1, "test_macro_f1_ci95": ci, "test_balanced_accuracy": f1 + 0.1,
                "kept_epoch": seed - 40}

    path = tmp_path / "recipe_seeds.json"
    path.write_text(json.dumps({"runs": {"class-weights": [run(42, 0.30, [0.2, 0.4]), run(43, 0.40, [0.3, 0.5])],
                                         "nocrop-128": [run(42, 0.50, None)]}}))
    table = seed_runs(path)
    assert list(table["recipe"]) == ["class-weights", "class-weights", "nocrop-128"] and list(table["seed"]) == [42, 43, 42]
    assert list(table.loc[1, ["test macro-F1", "CI low", "CI high", "balanced accuracy", "kept epoch"]]) == pytest.approx(
        [0.40, 0.3, 0.5, 0.5, 3])
    assert table.loc[2, ["CI low", "CI high"]].isna().all()  # no interval recorded
    fig = seed_runs_figure(table, reference="class-weights")
    ax = fig.axes[0]
    points = sorted((round(float(line.get_xdata()[0]), 3), round(float(line.get_ydata()[0]), 3))
                    for container in ax.containers for line in container.lines[:1])
    assert [x for x, _ in points] == [0.3, 0.4, 0.5]  # one point per run, at its score
    bars = [c for c in ax.containers if c.has_xerr]
    assert len(bars) == 2  # the run without an interval has no bar
    (reference,) = [line for line in ax.lines if line.get_linestyle() == ":"]
    assert reference.get_xdata()[0] == pytest.approx(0.35)  # mean of the reference recipe's seeds
    assert [t.get_text() for t in ax.get_yticklabels()] == ["class-weights", "nocrop-128"]
    with pytest.raises(LiverlibError, match="benchmarks.recipe_seeds"):
        seed_runs(tmp_path / "missing.json")


def test_paired_seeds_compare_two_recipes_on_the_seeds_both_finished(tmp_path):
    def run(seed, f1):
        return {"seed": seed, "test_macro_f1": f1, "test_balanced_accuracy": 0.5}

    path = tmp_path / "recipe_seeds.json"
    path.write_text(json.dumps({"runs": {"class-weights": [run(42, 0.30), run(43, 0.40), run(44, 0.35)],
                                         "balanced-sampling": [run(43, 0.38), run(42, 0.36)]}}))
    pairs = paired_seeds("balanced-sampling", "class-weights", path)
    assert list(pairs.index) == [42, 43] and pairs.index.name == "seed"  # seed 44: only one recipe has it
    assert list(pairs.columns) == ["class-weights", "balanced-sampling", "difference"]
    np.testing.assert_allclose(pairs["difference"], [0.06, -0.02])
    assert (pairs["difference"] > 0).sum() == 1
    path.write_text(json.dumps({"runs": {"class-weights": [run(42, 0.30)], "other": [run(7, 0.5)]}}))
    assert paired_seeds("other", "class-weights", path).empty
    with pytest.raises(LiverlibError, match="no recipe 'nocrop-128'.*class-weights, other"):
        paired_seeds("nocrop-128", "class-weights", path)


def test_before_and_after_reads_scores_pointing_and_lesion_sizes_and_refuses_a_bad_file(tmp_path):
    def run(f1, hit, shares):
        return {"test_macro_f1": f1, "test_macro_f1_ci95": [f1 - 0.1, f1 + 0.1], "test_balanced_accuracy": 0.5,
                "kept_epoch": 3, "pointing_game": {"slices": 20, "hit_rate": hit, "chance": 0.04, "mass_inside": 0.1},
                "test_predicted_share": {"benign": shares[0], "normal": 1 - shares[0]},
                "by_lesion_size": [{"diameter": "<10 mm", "slices": 5, "predicted_abnormal": shares[0],
                                    "predicted_true_class": shares[0] / 2},
                                   {"diameter": "10-20 mm", "slices": 0, "predicted_abnormal": None,
                                    "predicted_true_class": None}]}

    path = tmp_path / "before_after.json"
    before_settings = {"crop": "none", "class_weighting": True, "balanced_sampling": False, "seed": 42}
    after_settings = {**before_settings, "crop": "liver", "class_weighting": False, "balanced_sampling": True}
    path.write_text(json.dumps({"runs": {"before": {**run(0.2, 0.0, [0.4]), "settings": before_settings},
                                         "after": {**run(0.35, 0.05, [0.8]), "settings": after_settings}}}))
    scores, by_size = before_after(path)
    assert scores.loc["before", "changes"] == ""  # what each run changes against the first
    assert scores.loc["after", "changes"] == "crop none -> liver; class weights on -> off; balanced sampling off -> on"
    assert list(scores.index) == ["before", "after"]
    assert scores.loc["after", "test macro-F1"] == 0.35 and scores.loc["after", "CI low"] == pytest.approx(0.25)
    assert scores.loc["before", "pointing hit rate"] == 0.0 and scores.loc["after", "chance"] == 0.04
    assert scores.loc["before", "most frequent answer"] == "normal" and scores.loc["before", "its share"] == 0.6
    assert scores.loc["after", "most frequent answer"] == "benign" and scores.loc["after", "its share"] == 0.8
    assert by_size.loc[("after", "<10 mm"), "predicted abnormal"] == 0.8
    assert by_size.loc[("before", "<10 mm"), "predicted true class"] == 0.2
    assert np.isnan(by_size.loc[("before", "10-20 mm"), "predicted abnormal"])  # an empty bin has no share
    assert list(by_size.loc["before"].index) == ["<10 mm", "10-20 mm"]  # the bins in their order
    path.write_text(json.dumps({"runs": {}}))
    with pytest.raises(LiverlibError, match="holds no runs"):
        before_after(path)
    with pytest.raises(LiverlibError, match="benchmarks.before_after"):
        before_after(tmp_path / "missing.json")
