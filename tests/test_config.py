
import pytest

from liverlib.config import (CLASS_NAMES, PROFILE_NAMES, estimate_training_seconds, format_duration,
                             load_config)
from liverlib.errors import LiverlibError


def test_paper_profile_has_the_papers_exact_settings():
    cfg = load_config("paper")
    assert cfg.image_size == 224
    assert cfg.batch_size == 46
    assert cfg.learning_rate == pytest.approx(1e-4)
    assert (cfg.beta_1, cfg.beta_2) == (0.9, 0.999)
    assert cfg.epochs == 80
    assert (cfg.lr_drop_every, cfg.lr_drop_factor) == (20, 0.1)
    assert cfg.early_stopping_patience == 10
    assert cfg.split_fractions == (0.7, 0.15, 0.15)
    assert cfg.phantom_n == 4741
    assert (cfg.dense_units, cfg.dropout, cfg.hyperband_factor) == (256, 0.5, 3)
    assert cfg.class_weighting is False  # the paper trained without class weights (its future work)


def test_training_settings_key_follows_what_training_learns_from():
    from liverlib.config import training_settings_key

    laptop = load_config("laptop")
    key = training_settings_key(laptop)
    assert len(key) == 64 and key == training_settings_key(load_config("laptop"))
    # anything that changes the trained model changes the key ...
    for change in (dict(image_size=96), dict(balanced_sampling=False), dict(learning_rate=3e-4), dict(seed=1),
                   dict(epochs=9), dict(balanced_sampling=False, class_weighting=True),
                   dict(backbone_blocks=(1, 1, 1, 1), weights=None)):
        assert training_settings_key(laptop.replace(**change)) != key, change
    # an option added later is keyed only when set, so earlier runs (which never had it) keep their key
    import dataclasses
    import hashlib
    import json

    from liverlib.config import _NOT_LEARNING_SETTINGS, _TUNING_SETTINGS

    earlier = laptop.replace(balanced_sampling=False, class_weighting=True)  # the laptop profile before the option
    before_the_option = {k: v for k, v in dataclasses.asdict(earlier).items()
                         if k not in _NOT_LEARNING_SETTINGS | _TUNING_SETTINGS | {"balanced_sampling", "backbone_blocks"}}
    assert training_settings_key(earlier) == hashlib.sha256(
        json.dumps(before_the_option, sort_keys=True, default=str).encode()).hexdigest()
    # ... where the run's files go and how a search is sized do not
    assert training_settings_key(laptop.replace(artifacts_dir=laptop.artifacts_dir / "x", tuner_max_epochs=5)) == key


def test_laptop_and_paper_train_resnet50_and_the_quick_profile_a_resnet14():
    from liverlib.backbone import RESNET50_BLOCKS, relative_compute, resnet_depth

    assert resnet_depth() == 50 and resnet_depth((1, 1, 1, 1)) == 14
    assert relative_compute(RESNET50_BLOCKS) == 1 and 0.3 < relative_compute((1, 1, 1, 1)) < 0.33
    for name in ("paper", "laptop"):
        assert load_config(name).backbone_blocks == RESNET50_BLOCKS
    quick = load_config("quick")
    assert quick.backbone_blocks == (1, 1, 1, 1) and "ResNet-14" in quick.describe()
    assert quick.replace(backbone_blocks=[3, 4, 6, 3]).backbone_blocks == RESNET50_BLOCKS  # a card's JSON list
    with pytest.raises(LiverlibError, match="fit ResNet-50.*--profile laptop"):
        quick.replace(weights="imagenet")
    # the estimate reads ResNet-50's measured rates, scaled by the backbone's arithmetic
    resnet50 = quick.replace(backbone_blocks=RESNET50_BLOCKS)
    assert estimate_training_seconds(quick, 1000) < 0.35 * estimate_training_seconds(resnet50, 1000)
    for bad in ((1, 1, 1), (0, 1, 1, 1), "deep", "1111", (1.7, 1, 1, 1), (True, 1, 1, 1)):
        with pytest.raises(LiverlibError, match="four whole numbers"):
            quick.replace(backbone_blocks=bad)


def test_profiles_get_smaller_from_paper_to_quick():
    paper, laptop, quick = (load_config(p) for p in ("paper", "laptop", "quick"))
    for a, b in ((paper, laptop), (laptop, quick)):
        assert estimate_training_seconds(a, 1000) > estimate_training_seconds(b, 1000)
    assert quick.phantom_n < laptop.phantom_n


def test_environment_selects_profile_data_and_artifacts(monkeypatch, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("LIVERLIB_PROFILE", "quick")
    monkeypatch.setenv("LIVERLIB_DATA_DIR", str(data))
    monkeypatch.setenv("LIVERLIB_ARTIFACTS_DIR", str(tmp_path / "arts"))
    cfg = load_config()
    assert cfg.profile == "quick"
    assert cfg.data_dir == data
    assert cfg.artifacts_dir == tmp_path / "arts"
    assert not cfg.uses_phantom


def test_default_profile_is_laptop_and_uses_the_phantom():
    cfg = load_config()
    assert cfg.profile == "laptop"
    assert cfg.uses_phantom
    assert cfg.phantom_dir.is_relative_to(cfg.artifacts_dir)


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(LiverlibError, match="unknown profile 'fast'.*quick, laptop, paper"):
        load_config("fast")


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(LiverlibError, match="does not exist"):
        load_config("quick", data_dir=tmp_path / "nowhere")


def test_describe_lists_every_setting():
    text = load_config("paper").describe()
    for needle in ("224x224x3", "batch size", "46", "x0.1 every 20 epochs", "L40 / W400", "synthetic CT phantom"):
        assert needle in text


def test_paper_estimate_is_a_day_on_this_cpu():
    from liverlib.facts import fact

    cfg = load_config("paper")
    seconds = estimate_training_seconds(cfg, round(0.7 * cfg.phantom_n))
    # 80 epochs x 3319 images at the measured rate at 224 px, batch 46 (benchmarks/results/training_speed.json)
    measured = fact("training_speed.throughput[size=224,batch=46,loop=ours].images_per_s_median").value
    assert seconds == pytest.approx(80 * 3319 / measured, rel=1e-6)
    assert seconds > 20 * 3600


def test_estimate_without_benchmark_results_uses_the_rough_fallback(monkeypatch, tmp_path):
    from liverlib import config as config_module

    monkeypatch.setenv("LIVERLIB_BENCH_RESULTS", str(tmp_path / "missing"))
    cfg = load_config("paper")
    rough = config_module._ROUGH_CPU_TRAIN_IMAGES_PER_S[(224, 46)]
    assert estimate_training_seconds(cfg, 1000) == pytest.approx(80 * 1000 / rough)


def test_class_names_are_the_four_classes_in_keras_order():
    assert CLASS_NAMES == tuple(sorted(("benign", "malignant", "cirrhosis", "normal")))
    assert set(PROFILE_NAMES) == {"quick", "laptop", "paper"}


@pytest.mark.parametrize("seconds,text", [(30, "30 s"), (600, "10 min"), (3 * 3600 + 300, "3 h 05 min")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_the_phantom_folder_follows_the_window(tmp_path):
    """The phantom's PNGs are stored windowed, so a profile with another window gets its own phantom files."""
    config = load_config("quick", artifacts_dir=tmp_path)
    assert config.phantom_dir.name == "phantom-n160-s256-seed0"
    liver_window = config.replace(window_level=30.0, window_width=150.0)
    assert liver_window.phantom_dir != config.phantom_dir and "L30W150" in liver_window.phantom_dir.name
