"""Run profiles and the three environment knobs every notebook and command reads.

A profile fixes the size of a run: how much phantom data, which image size, how many epochs. Three exist:

* ``quick``: CI, nbval and the exercise solutions. Tiny data, small images, 1-2 epochs, and a ResNet-14
  (ResNet-50's stem, stages, layer names and output shape with one bottleneck block per stage: each model's
  graph builds in a third of the time); seconds to a few minutes. It takes the laptop profile's crop and
  batch-norm momentum, so CI runs most code paths the book runs (balanced sampling only in unit and smoke
  tests), but never asks the network for weights.
* ``laptop``: the default for ``make book``. The most faithful run that finishes on a 2-core CPU: the full
  phantom, 64 px, 8 epochs, balanced sampling (each class drawn equally often; chosen over class weights by
  the seeds comparison of benchmarks/results/recipe_seeds.json), the liver crop (more detail at the same input
  size; in the same comparison the whole slice did not score above it on every seed), batch-norm momentum 0.9
  (moving statistics that keep up with a short run), Adam at 5e-4 (a tenth of the rate
  with the lowest loss in the ablation's learning-rate range test) with a one-epoch warm-up and cosine decay,
  and ImageNet weights when they can be fetched (random initialisation otherwise). Its cost is measured by
  ``python -m benchmarks.course_cost --only book``; what each lever buys, by ``benchmarks/recipe_ablation.py``.
* ``paper``: the paper's exact settings (224x224x3, batch 46, Adam 1e-4, 80 epochs, x0.1 every 20 epochs,
  early stopping patience 10, 70/15/15 split, transfer learning from ImageNet weights, the whole slice).
  Meant for a GPU; it prints its estimated time first.

The knobs are environment variables, so CI can shrink every notebook without editing it:
``LIVERLIB_PROFILE`` (quick | laptop | paper), ``LIVERLIB_DATA_DIR`` (a folder of real or phantom data;
unset means the embedded synthetic phantom) and ``LIVERLIB_ARTIFACTS_DIR`` (where runs, caches and
figures go).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from liverlib.backbone import RESNET50_BLOCKS, backbone_name, checked_blocks, relative_compute, weights_refusal
from liverlib.crop import CROP_MODES
from liverlib.errors import LiverlibError

LR_SCHEDULES: tuple[str, ...] = ("piecewise", "warmup-cosine")
# the validation figure that picks the kept epoch, and whether lower or higher is better
CHECKPOINT_METRICS: dict[str, str] = {"val_loss": "min", "val_macro_f1": "max"}

PROFILE_ENV = "LIVERLIB_PROFILE"
DATA_DIR_ENV = "LIVERLIB_DATA_DIR"
ARTIFACTS_DIR_ENV = "LIVERLIB_ARTIFACTS_DIR"
DEFAULT_PROFILE = "laptop"

CLASS_NAMES: tuple[str, ...] = ("benign", "cirrhosis", "malignant", "normal")
"""The four classes, in the alphabetical order Keras' directory loaders give them."""

# Share of each class in the paper's test set (Table 2 supports: 446 benign, 146 malignant, 90 normal,
# 30 cirrhosis, of 712). The default phantom reproduces these proportions over the paper's 4,741 slices.
PAPER_CLASS_SUPPORT: dict[str, int] = {"benign": 446, "malignant": 146, "normal": 90, "cirrhosis": 30}
PAPER_DATASET_SIZE = 4741


@dataclass(frozen=True)
class AugmentationConfig:
    """Ranges of the random affine transform applied to training images (the paper's ImageDataGenerator use).

    Rotation is in degrees, shifts and zoom are fractions of the image size.
    """

    rotation_deg: float = 10.0
    width_shift: float = 0.1
    height_shift: float = 0.1
    zoom: float = 0.1
    horizontal_flip: bool = True


@dataclass(frozen=True)
class RunConfig:
    """Everything that sizes a run. Build one with :func:`load_config`; change fields with ``.replace``."""

    profile: str
    # data
    phantom_n: int  # slices in the default synthetic phantom dataset
    phantom_size: int  # matrix size the phantom is generated at (real CT: 512)
    phantom_seed: int
    split_fractions: tuple[float, float, float]  # train, validation, test
    window_level: float  # HU; abdomen window L40/W400 by default
    window_width: float
    # model and training
    image_size: int  # side of the square network input, in pixels
    batch_size: int
    epochs: int
    learning_rate: float
    lr_drop_every: int  # epochs between learning-rate drops (piecewise constant schedule)
    lr_drop_factor: float
    beta_1: float
    beta_2: float
    early_stopping_patience: int
    dense_units: int
    dropout: float
    # tuning
    hyperband_factor: int
    tuner_max_epochs: int
    seed: int = 42
    # share of the training patients a Hyperband search trains on (validation stays whole); a search trains
    # many models, so on a CPU it samples the training set
    tuner_train_fraction: float = 1.0
    # fine-tuning (the paper's "fine-tuning various layers"): train only the head for this many epochs,
    # then train the stages in fine_tune_stages. Useful with ImageNet weights; 0 trains everything throughout.
    head_only_epochs: int = 0
    # weight each class by the inverse of its frequency in the training split (the paper's future work; off in
    # every profile). Shifts the model away from always answering the majority class (benign).
    class_weighting: bool = False
    # draw each class equally often instead: the training rows resampled once per run (seeded, with
    # replacement) to the same total, a quarter each for four classes; the other answer to class imbalance,
    # so it replaces class weights (on in laptop; benchmarks/results/recipe_seeds.json compares the two)
    balanced_sampling: bool = False
    fine_tune_stages: tuple[str, ...] = ("conv1", "conv2", "conv3", "conv4", "conv5", "head")
    # where the network looks: "none" resizes the whole slice (the paper's input); "liver" crops to the liver
    # region found in the image itself, "body" to the body outline (liverlib.crop), before resizing
    crop: str = "none"
    # initial weights: None for random initialisation; "imagenet" for Keras' published ResNet-50 weights
    # (fetched when the network allows, else random initialisation with one message; liverlib.weights)
    weights: str | None = None
    # bottleneck blocks per stage of the backbone: ResNet-50's (3, 4, 6, 3) in the laptop and paper profiles; the
    # quick profile (tests, nbval, exercise solutions) builds a ResNet-14 with one block per stage, the same stem,
    # stages, layer names and output shape at a fraction of the graph-building time (random initialisation only)
    backbone_blocks: tuple[int, ...] = RESNET50_BLOCKS
    # batch-norm momentum of the moving statistics used at evaluation (Keras' default 0.99 averages over about
    # 100 steps: in a short run they lag behind the weights, and the validation answer flips between classes)
    bn_momentum: float = 0.99
    # learning rate: "piecewise" (the paper: x lr_drop_factor every lr_drop_every epochs) or "warmup-cosine"
    # (linear warm-up to learning_rate over the first epoch, then cosine decay to 0 at the last epoch)
    lr_schedule: str = "piecewise"
    label_smoothing: float = 0.0  # the paper's plain cross-entropy is 0
    # which epoch's model the run keeps (and early stopping watches): the paper's lowest validation loss, or the
    # highest validation macro-F1. Corrected for imbalance, the plain validation loss is often lowest after a few
    # epochs, while the rare classes are still being learned (benchmarks/results/phantom_ceiling.json)
    checkpoint_metric: str = "val_loss"
    # GPU options (off by default; both slow training on the CPUs this course is built on; for mixed precision
    # see the mixed_bfloat16 row of benchmarks/results/training_speed.json):
    # mixed precision (float16 compute, float32 weights and softmax) and XLA compilation of the training step
    mixed_precision: bool = False
    xla: bool = False
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    data_dir: Path | None = None  # None: the embedded synthetic phantom
    artifacts_dir: Path = Path("artifacts")

    def __post_init__(self):
        if self.crop not in CROP_MODES:
            raise LiverlibError(f"unknown crop {self.crop!r}; choose one of {', '.join(CROP_MODES)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise LiverlibError(f"unknown learning-rate schedule {self.lr_schedule!r}; choose one of "
                                f"{', '.join(LR_SCHEDULES)}")
        if self.checkpoint_metric not in CHECKPOINT_METRICS:
            raise LiverlibError(f"unknown checkpoint metric {self.checkpoint_metric!r}; choose one of "
                                f"{', '.join(CHECKPOINT_METRICS)}")
        if self.balanced_sampling and self.class_weighting:
            raise LiverlibError("balanced sampling and class weights both correct for class imbalance, and together "
                                "they over-correct: turn one off (in `liverlib train` or `tune`, leave out "
                                "--class-weights or --balanced-sampling; in Python, replace(class_weighting=True, "
                                "balanced_sampling=False) or the other way round)")
        if not 0 <= self.label_smoothing < 1:
            raise LiverlibError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        blocks = checked_blocks(self.backbone_blocks)  # a card's config (JSON) gives a list: the same blocks
        object.__setattr__(self, "backbone_blocks", blocks)
        if blocks != RESNET50_BLOCKS and self.weights is not None:
            raise LiverlibError(weights_refusal(blocks))
        if not 0 < self.bn_momentum < 1:
            raise LiverlibError(f"batch-norm momentum must be in (0, 1), got {self.bn_momentum}")

    def replace(self, **changes) -> "RunConfig":
        """A copy with some fields changed (the config itself is immutable)."""
        return dataclasses.replace(self, **changes)

    @property
    def uses_phantom(self) -> bool:
        return self.data_dir is None

    @property
    def phantom_dir(self) -> Path:
        """Where the embedded phantom dataset of this profile is cached."""
        window = "" if (self.window_level, self.window_width) == (40.0, 400.0) else \
            f"-L{self.window_level:g}W{self.window_width:g}"  # the PNGs are stored windowed: another window, other files
        return (self.artifacts_dir / "data" /
                f"phantom-n{self.phantom_n}-s{self.phantom_size}-seed{self.phantom_seed}{window}")

    def as_rows(self) -> list[tuple[str, str]]:
        """(setting, value) rows for printing at the top of a notebook."""
        rows = [
            ("profile", self.profile),
            ("data", str(self.data_dir) if self.data_dir else f"synthetic CT phantom ({self.phantom_n} slices, "
                                                               f"{self.phantom_size} px, seed {self.phantom_seed})"),
            ("artifacts", _shown(self.artifacts_dir)),
            ("split train/val/test", "/".join(f"{f:.0%}" for f in self.split_fractions)),
            ("window (level/width, HU)", f"L{self.window_level:g} / W{self.window_width:g}"),
            ("input size", f"{self.image_size}x{self.image_size}x3"),
            ("batch size", str(self.batch_size)),
            ("epochs", str(self.epochs)),
            ("optimizer", f"Adam lr={self.learning_rate:g}, beta1={self.beta_1}, beta2={self.beta_2}"),
            ("lr schedule", f"x{self.lr_drop_factor:g} every {self.lr_drop_every} epochs" if self.lr_schedule == "piecewise"
             else "linear warm-up over the first epoch, then cosine decay"),
            ("early stopping patience", str(self.early_stopping_patience)),
            ("kept epoch", "lowest validation loss" if self.checkpoint_metric == "val_loss"
             else "highest validation macro-F1"),
            ("class weights", "balanced (inverse class frequency)" if self.class_weighting else "none (as the paper)"),
            ("sampling", "each class equally often (resampled)" if self.balanced_sampling
             else "every training slice once per epoch (as the paper)"),
            ("crop", {"none": "none: the whole slice (as the paper)", "liver": "the liver region (liverlib.crop)",
                      "body": "the body outline"}.get(self.crop, self.crop)),
            ("initial weights", "ImageNet (Keras' ResNet-50), when they can be fetched" if self.weights == "imagenet"
             else str(self.weights) if self.weights else "random initialisation"),
            ("backbone", f"{backbone_name(self.backbone_blocks)} "
                         f"({'-'.join(map(str, self.backbone_blocks))} bottleneck blocks per stage)"),
            ("batch-norm momentum", f"{self.bn_momentum:g}"),
            ("label smoothing", f"{self.label_smoothing:g}"),
            ("head", f"Dense {self.dense_units}, dropout {self.dropout}"),
            ("fine-tuning", "all layers throughout" if not self.head_only_epochs else
             f"head only for {self.head_only_epochs} epochs, then {', '.join(self.fine_tune_stages)}"),
            ("Hyperband", f"factor {self.hyperband_factor}, max_epochs {self.tuner_max_epochs}"
                          + (f", {self.tuner_train_fraction:.0%} of training patients" if self.tuner_train_fraction < 1 else "")),
            ("seed", str(self.seed)),
        ]
        return rows

    def describe(self) -> str:
        """A two-column, plain-text table of the configuration."""
        rows = self.as_rows()
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


_PROFILES: dict[str, dict] = {
    "quick": dict(
        phantom_n=160, phantom_size=256, phantom_seed=0, split_fractions=(0.7, 0.15, 0.15),
        window_level=40.0, window_width=400.0,
        image_size=64, batch_size=16, epochs=2, learning_rate=1e-4, lr_drop_every=20, lr_drop_factor=0.1,
        beta_1=0.9, beta_2=0.999, early_stopping_patience=10, dense_units=256, dropout=0.5,
        hyperband_factor=3, tuner_max_epochs=2, crop="liver", bn_momentum=0.9, checkpoint_metric="val_macro_f1",
        backbone_blocks=(1, 1, 1, 1),
    ),
    "laptop": dict(
        phantom_n=PAPER_DATASET_SIZE, phantom_size=512, phantom_seed=0, split_fractions=(0.7, 0.15, 0.15),
        window_level=40.0, window_width=400.0,
        image_size=64, batch_size=32, epochs=8, lr_drop_every=20, lr_drop_factor=0.1,
        beta_1=0.9, beta_2=0.999, early_stopping_patience=10, dense_units=256, dropout=0.5,
        hyperband_factor=3, tuner_max_epochs=2, tuner_train_fraction=0.25, balanced_sampling=True,
        crop="liver", bn_momentum=0.9, weights="imagenet", lr_schedule="warmup-cosine", learning_rate=5e-4,
        checkpoint_metric="val_macro_f1",
    ),
    "paper": dict(
        phantom_n=PAPER_DATASET_SIZE, phantom_size=512, phantom_seed=0, split_fractions=(0.7, 0.15, 0.15),
        window_level=40.0, window_width=400.0,
        image_size=224, batch_size=46, epochs=80, learning_rate=1e-4, lr_drop_every=20, lr_drop_factor=0.1,
        beta_1=0.9, beta_2=0.999, early_stopping_patience=10, dense_units=256, dropout=0.5,
        hyperband_factor=3, tuner_max_epochs=80, weights="imagenet",
    ),
}

PROFILE_NAMES: tuple[str, ...] = tuple(_PROFILES)

# Training throughput (images/s) of ResNet-50 on the 2-core reference CPU, by (image size, batch), used only to
# estimate run time before a run starts. The measured rates come from benchmarks/results/training_speed.json
# (`make bench`), read at run time by liverlib.facts.training_speeds. This table is a ROUGH FALLBACK for when
# that file is missing (an installed package has no benchmarks): orders of magnitude, not a measurement.
_ROUGH_CPU_TRAIN_IMAGES_PER_S = {(64, 32): 20.0, (128, 32): 7.0, (224, 46): 2.0}


def cpu_training_speeds() -> dict[tuple[int, int], float]:
    """Images/s by (image size, batch) on the reference CPU: measured if the benchmark results are there,
    else the rough fallback."""
    from liverlib.facts import training_speeds

    return training_speeds() or dict(_ROUGH_CPU_TRAIN_IMAGES_PER_S)


# fields that do not change what a run learns; the data is keyed separately (by the images' hashes)
_NOT_LEARNING_SETTINGS = {"profile", "phantom_n", "phantom_size", "phantom_seed", "data_dir", "artifacts_dir"}
_TUNING_SETTINGS = {"hyperband_factor", "tuner_max_epochs", "tuner_train_fraction"}
# options added after runs existed: left out of the key at their default, so that earlier runs keep their key
_KEYED_ONLY_WHEN_SET = {"balanced_sampling": False, "backbone_blocks": RESNET50_BLOCKS}


def training_settings(config: RunConfig, tuning: bool = False, class_names=None, every: bool = False) -> dict:
    """The settings that decide what a training run learns (image size, recipe, seed, class weighting...), as
    JSON-ready values: what :func:`training_settings_key` hashes. With ``tuning``, the Hyperband settings count
    too (for a search's project folder). ``class_names``: the classes the model learns, when they are not the
    paper's four (which keep the key they always had). ``every``: also the options the key leaves out at their
    default (``_KEYED_ONLY_WHEN_SET``), to show a run's settings in full."""
    import json

    skip = _NOT_LEARNING_SETTINGS | (set() if tuning else _TUNING_SETTINGS)
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in skip and (
        every or not (k in _KEYED_ONLY_WHEN_SET and v == _KEYED_ONLY_WHEN_SET[k]))}
    if class_names is not None and tuple(class_names) != CLASS_NAMES:
        settings["class_names"] = [str(c) for c in class_names]
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def training_settings_key(config: RunConfig, tuning: bool = False, class_names=None) -> str:
    """SHA-256 of :func:`training_settings`, so a run trained under other settings is never taken for this
    configuration's run."""
    import hashlib
    import json

    settings = training_settings(config, tuning, class_names)
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def _shown(path: Path) -> str:
    """A folder as a page may show it: relative to the working folder or the home folder, never the build
    machine's absolute path."""
    path = Path(path).expanduser().resolve()
    repo = Path(__file__).resolve().parent.parent  # a source checkout: artifacts/ sits beside liverlib/
    for base, prefix in ((Path.cwd().resolve(), ""), (repo, ""), (Path.home().resolve(), "~/")):
        try:
            return prefix + str(path.relative_to(base)) if path != base else (prefix or ".")
        except ValueError:
            continue
    return ".../" + "/".join(path.parts[-2:])


def default_artifacts_dir() -> Path:
    """``<repo>/artifacts`` for a source checkout, else ``~/.cache/liverlib``."""
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").is_file() and (repo / "liverlib").is_dir():
        return repo / "artifacts"
    return Path.home() / ".cache" / "liverlib"


def setting_defaults() -> dict:
    """Each RunConfig field's default, None for the fields without one (every profile sets them): what a
    setting was in a run that predates it, or in a profile that does not name it."""
    return {f.name: None if f.default is dataclasses.MISSING else f.default for f in dataclasses.fields(RunConfig)}


def profiles_with(setting: str) -> tuple[str, ...]:
    """The profiles in which a yes/no setting is on, from the profiles alone (for help texts: no environment
    variable is read, so a bad LIVERLIB_DATA_DIR cannot break them)."""
    default = setting_defaults()[setting]
    return tuple(name for name, values in _PROFILES.items() if values.get(setting, default))


def load_config(profile: str | None = None, *, data_dir: str | os.PathLike | None = None,
                artifacts_dir: str | os.PathLike | None = None) -> RunConfig:
    """The run configuration: arguments first, then ``LIVERLIB_*`` environment variables, then defaults."""
    name = (profile or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE).strip().lower()
    if name not in _PROFILES:
        raise LiverlibError(
            f"unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)} "
            f"(set {PROFILE_ENV} or pass --profile)")
    data = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if data is not None:
        data = Path(data).expanduser()
        if not data.is_dir():
            raise LiverlibError(
                f"data folder {str(data)!r} does not exist or is not a folder; point {DATA_DIR_ENV} "
                "(or --data) at a folder with one sub-folder per class, or unset it to use the synthetic phantom")
    arts = artifacts_dir if artifacts_dir is not None else os.environ.get(ARTIFACTS_DIR_ENV) or None
    arts = Path(arts).expanduser() if arts else default_artifacts_dir()
    return RunConfig(profile=name, data_dir=data, artifacts_dir=arts, **_PROFILES[name])


def estimate_training_seconds(config: RunConfig, n_train: int, images_per_s: float | None = None) -> float:
    """Rough wall time of ``config.epochs`` epochs over ``n_train`` images on the reference 2-core CPU.

    The rate is the measured one (:func:`cpu_training_speeds`) at the nearest image size, then the nearest
    batch. ``images_per_s`` overrides it (for example with a GPU's measured rate).
    """
    if images_per_s is None:
        speeds = cpu_training_speeds()
        size = min({s for s, _ in speeds}, key=lambda s: (abs(s - config.image_size), s))
        batch = min((b for s, b in speeds if s == size), key=lambda b: (abs(b - config.batch_size), b))
        # throughput scales roughly with the inverse of the pixel count, and of the backbone's arithmetic (the
        # rates are ResNet-50's)
        images_per_s = (speeds[(size, batch)] * (size / config.image_size) ** 2
                        / relative_compute(config.backbone_blocks))
    return config.epochs * n_train / images_per_s


def format_duration(seconds: float) -> str:
    """'3 h 05 min', '12 min', '45 s'."""
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours:.0f} h {rest:02.0f} min"
