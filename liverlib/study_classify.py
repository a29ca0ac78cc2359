"""Classify a whole study: a CT series or volume in, one study-level answer out.

Three steps, each its own function:

1. :func:`pick_liver_slices`: which slices show the liver. Each slice, in the abdomen window (L40/W400),
   goes through :func:`liverlib.crop.find_crop`; a slice counts when a "liver region" is found on the image
   left (the patient's right in the radiological view every volume is read into; a region on the image right
   is the spleen or the heart, ``crop.flipped``). The liver is one organ, so only the longest run of such
   slices is kept (gaps of up to :data:`MAX_GAP` slice filled), and that run must reach a liver's width
   somewhere: its widest box at least :data:`MIN_LIVER_EXTENT` of the body's (a run of kidney slices below
   the liver, the usual false find, stays under a third).
2. The chosen slices are prepared exactly as the model card says (its window, ``crop``, input size and
   ``input_normalisation``; :func:`liverlib.preprocess.prepare_grey` and :func:`~liverlib.preprocess.normalise`)
   and classified in batches on classify's fastest forward pass (LiteRT where available).
3. :func:`liverlib.aggregate.aggregate` combines the slice probabilities with one of the rules ``mean``,
   ``top-k`` and ``noisy-or`` over the card's own classes.

The study is named by its folder or file name, never by anything in a DICOM header.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liverlib.aggregate import DEFAULT_RULE, TOP_K, abnormality, aggregate, check_rule, normal_class_index
from liverlib.classify import display_name, get_classifier
from liverlib.crop import Crop, find_crop
from liverlib.errors import LiverlibError
from liverlib.preprocess import normalise, prepare_grey, resize_grey
from liverlib.runs import cached
from liverlib.imaging.windowing import WINDOWS, window_to_uint8

PICK_WINDOW = WINDOWS["abdomen"]  # the window liver slices are found in, whatever the model's window
MAX_GAP = 1  # slices without a liver find that may interrupt the liver's run
MIN_LIVER_EXTENT = 0.42  # widest liver box / body box; phantom: livers 0.49-0.62, kidney-only runs 0.30-0.35
N_TOP = 3  # top slices reported (and explained with Grad-CAM when asked)
BATCH_SIZE = 16  # slices per forward call: LiteRT takes 16 at 64 px in half the time of 16 single calls


class NoLiverError(LiverlibError):
    """No slice of the study shows the liver."""


class BatchedLiteRT:
    """A run's converted model (``model.tflite``, checked by :mod:`liverlib.litert`) on a LiteRT interpreter
    that takes batches: ``forward(x)`` for any number of slices, in batches of up to ``batch``."""

    def __init__(self, path: Path, batch: int = BATCH_SIZE, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter  # local: optional heavy dependency

        self._interpreter = Interpreter(model_path=str(path), num_threads=threads or os.cpu_count() or 1)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self.batch, self._allocated = batch, 0

    def _run(self, x: np.ndarray) -> np.ndarray:
        if len(x) != self._allocated:  # one size per call: the batches of a study are made equal below
            self._interpreter.resize_tensor_input(self._input["index"], [len(x), *self._input["shape"][1:]])
            self._interpreter.allocate_tensors()
            self._allocated = len(x)
        self._interpreter.set_tensor(self._input["index"], np.ascontiguousarray(x, dtype=np.float32))
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()

    def forward(self, x: np.ndarray) -> np.ndarray:
        n_batches = -(-len(x) // self.batch)
        size = -(-len(x) // n_batches)  # equal batches, the last one padded by fewer than n_batches slices
        padded = np.concatenate([x, np.zeros((n_batches * size - len(x), *x.shape[1:]), x.dtype)])
        return np.concatenate([self._run(padded[i:i + size]) for i in range(0, len(padded), size)])[:len(x)]


@dataclass
class LiverPick:
    """Which slices of a volume show the liver, and what :func:`find_crop` said about each."""

    indices: list[int]  # the slices chosen, head to feet
    found: np.ndarray  # bool per slice: a liver region on the image left (before the run is taken)
    crops: list[Crop] = field(repr=False)
    greys: list[np.ndarray] = field(repr=False)  # the slices in PICK_WINDOW, uint8
    extent: float  # the run's widest liver box as a share of the body box (0 with no run)
    note: str = ""  # why no slice was chosen


def longest_run(flags, max_gap: int = MAX_GAP) -> np.ndarray:
    """The longest run of true values, allowing gaps of up to ``max_gap`` false ones (filled), as a mask.
    Ties go to the first (most cranial) run."""
    flags = np.asarray(flags, dtype=bool)
    out = np.zeros_like(flags)
    hits = np.flatnonzero(flags)
    if not len(hits):
        return out
    breaks = np.flatnonzero(np.diff(hits) > max_gap + 1)
    starts, ends = np.r_[0, breaks + 1], np.r_[breaks, len(hits) - 1]
    best = int(np.argmax(hits[ends] - hits[starts]))
    out[hits[starts[best]]:hits[ends[best]] + 1] = True
    return out


def pick_liver_slices(hu: np.ndarray, window: tuple[float, float] = PICK_WINDOW, max_gap: int = MAX_GAP,
                      min_extent: float = MIN_LIVER_EXTENT) -> LiverPick:
    """The slices of ``hu[z, y, x]`` (radiological view, head first) that show the liver (see the module doc)."""
    greys = [window_to_uint8(s, *window) for s in hu]
    crops = [find_crop(g, "liver", window) for g in greys]
    found = np.array([c.method == "liver region" and not c.flipped for c in crops], dtype=bool)
    run = longest_run(found, max_gap)
    extent, note = 0.0, ""
    if run.any():
        widest = max(np.flatnonzero(run & found), key=lambda i: crops[i].side)
        body = find_crop(greys[widest], "body", window)
        extent = crops[widest].side / max(body.side, 1)
        if extent < min_extent:
            note = (f"the only liver-density region on the patient's right side spans at most {extent:.0%} of the "
                    f"body's width (slices {np.flatnonzero(run)[0]}-{np.flatnonzero(run)[-1]}), too narrow for a "
                    f"liver (at least {min_extent:.0%}): a kidney?")
            run[:] = False
    elif len(hu):
        note = "no slice has a liver-density region on the image left (the patient's right)"
    return LiverPick(indices=[int(i) for i in np.flatnonzero(run)], found=found, crops=crops, greys=greys,
                     extent=float(extent), note=note)


@dataclass
class StudyResult:
    """The answer for one study (one series of it)."""

    file: str  # the path as given
    study: str  # the folder or file name
    n_slices: int
    liver_slices: list[int]  # indices of the slices classified, head to feet
    probabilities: dict[str, float]  # study level, in the card's class order
    predicted_class: str
    rule: str  # the rule applied (mean when the card has no normal class)
    top_slices: list[dict]  # {index, z_mm, probabilities}, the most abnormal first
    slice_probabilities: np.ndarray = field(repr=False)  # len(liver_slices) x classes
    z_mm: list[float] = field(repr=False, default_factory=list)  # every slice's height in the scanner (RAS S)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    series: int | None = None  # 1, 2, ... when the study holds several series
    model_inputs: dict[int, np.ndarray] = field(repr=False, default_factory=dict)  # top slices, as the model saw them
    heatmaps: dict[int, np.ndarray] = field(repr=False, default_factory=dict)  # top slices' Grad-CAM, in [0, 1]

    def as_json(self) -> dict:
        out = {"file": self.file, "study": self.study, "n_slices": self.n_slices,
               "liver_slices": len(self.liver_slices), "liver_slice_indices": self.liver_slices,
               "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
               "predicted_class": self.predicted_class, "rule": self.rule,
               "top_slices": [{**t, "probabilities": {k: round(v, 6) for k, v in t["probabilities"].items()}}
                              for t in self.top_slices],
               "warnings": self.warnings, "seconds": round(self.seconds, 3)}
        if self.series is not None:
            out["series"] = self.series
        return out

    def slice_rows(self) -> list[dict]:
        """One row per slice: its position, whether it was classified, and its probabilities if so."""
        where = {index: row for row, index in enumerate(self.liver_slices)}
        names = list(self.probabilities)
        rows = []
        for i in range(self.n_slices):
            row = {"file": self.file, "study": self.study, "index": i, "z_mm": self.z_mm[i], "liver": i in where}
            if i in where:
                p = self.slice_probabilities[where[i]]
                row["probabilities"] = {c: round(float(v), 6) for c, v in zip(names, p)}
                row["predicted_class"] = names[int(np.argmax(p))]
            rows.append(row)
        return rows


def slice_heights(volume) -> list[float]:
    """Each slice's height in the scanner (the RAS+ superior coordinate, mm; DICOM's z), head first."""
    n = volume.hu.shape[0]
    points = np.c_[np.arange(n), np.zeros(n), np.zeros(n), np.ones(n)]
    return [round(float(v), 2) for v in points @ np.asarray(volume.affine)[2]]


class StudyClassifier:
    """A run's model applied to whole volumes: made once per run folder (see :func:`get_study_classifier`)."""

    def __init__(self, model_dir: str | os.PathLike):
        self.slices = get_classifier(model_dir)  # the slice classifier: model, card, fast forward pass
        card = self.slices.card
        self.card = card
        self.class_names = list(self.slices.class_names)
        self.input_size = self.slices.input_size
        self.window = self.slices.window
        self.crop = str(card.get("crop", "none"))
        self.normalisation = str(card.get("input_normalisation", "unit"))
        self.normal = normal_class_index(self.class_names, card)
        self._batched = None
        self._litert: BatchedLiteRT | bool | None = None
        self._gradcam = None

    def model_grey(self, hu_slice: np.ndarray, pick: LiverPick | None = None, index: int | None = None) -> np.ndarray:
        """One slice as the model sees it (input size, uint8): the card's window, crop and size."""
        if pick is not None and tuple(self.window) == tuple(PICK_WINDOW):
            grey = pick.greys[index]
            if self.crop == "liver":  # the crop found while picking: what prepare_grey would find again
                return resize_grey(pick.crops[index].apply(grey), self.input_size)
        else:
            grey = window_to_uint8(hu_slice, *self.window)
        return prepare_grey(grey, self.input_size, self.crop, self.window)[0]

    def network_input(self, greys: np.ndarray) -> np.ndarray:
        """uint8 (n, S, S) -> float32 (n, S, S, 3) with the card's input normalisation."""
        return normalise(np.repeat(np.asarray(greys)[..., None], 3, axis=-1), self.normalisation)

    def litert_batches(self) -> BatchedLiteRT | None:
        """The run folder's checked ``model.tflite`` in a batched interpreter, if classify converted it there."""
        if self._litert is None:
            import json

            from liverlib.litert import LITERT_FILE, LITERT_INFO, file_sha256
            from liverlib.runs import MODEL_FILE

            run_dir = Path(self.slices.run_dir)
            try:
                info = json.loads((run_dir / LITERT_INFO).read_text())
                same = info.get("model_sha256") == file_sha256(run_dir / MODEL_FILE)
                self._litert = BatchedLiteRT(run_dir / LITERT_FILE) if same else False
            except Exception:  # missing or unreadable: slice by slice on classify's own interpreter
                self._litert = False
        return self._litert or None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for a batch (n, S, S, 3) in batches of :data:`BATCH_SIZE`: on LiteRT where classify uses
        it (the run's checked conversion), else through one traced TensorFlow function."""
        x = np.asarray(x, dtype=np.float32)
        if not len(x):
            return np.zeros((0, len(self.class_names)), np.float32)
        fast = self.slices.fast
        if fast.backend.startswith("LiteRT"):
            batched = self.litert_batches()
            if batched is not None:
                return batched.forward(x)
            return np.concatenate([fast.forward(x[i:i + 1]) for i in range(len(x))])
        if self._batched is None:
            import tensorflow as tf  # local: heavy dependency

            model = self.slices.model
            spec = tf.TensorSpec((None, self.input_size, self.input_size, 3), tf.float32)
            self._batched = tf.function(lambda v: model(v, training=False), input_signature=[spec])
        return np.concatenate([self._batched(x[i:i + BATCH_SIZE]).numpy() for i in range(0, len(x), BATCH_SIZE)])

    def explain(self, x: np.ndarray) -> np.ndarray:
        """Grad-CAM heatmaps (n, S, S) in [0, 1] for the predicted class of each slice."""
        from liverlib.explain import GradCam, upsample  # local: explain imports Keras

        if self._gradcam is None:
            self._gradcam = GradCam(self.slices.model)
        _, cams = self._gradcam(x)
        return np.stack([upsample(c, self.input_size) for c in cams])

    def __call__(self, volume, name: str, rule: str = DEFAULT_RULE, k: int = TOP_K, n_top: int = N_TOP,
                 gradcam: bool = False, file: str | None = None) -> StudyResult:
        start = time.perf_counter()
        check_rule(rule)
        study = display_name(name)
        hu = np.asarray(volume.hu)
        pick = pick_liver_slices(hu)
        if not pick.indices:
            raise NoLiverError(f"{study}: none of its {len(hu)} slices shows the liver ({pick.note}); is this an "
                               "abdominal CT series through the liver, in Hounsfield units?")
        greys = np.stack([self.model_grey(hu[i], pick, i) for i in pick.indices])
        x = self.network_input(greys)
        probs = self.predict(x).astype(np.float64)
        if not np.all(np.isfinite(probs)):
            raise LiverlibError(f"the model in {self.slices.run_dir} gave non-finite outputs for {study}; the model "
                                "is broken (retrain it)")
        probs /= probs.sum(axis=1, keepdims=True)
        study_p, used = aggregate(probs, rule, self.normal, k)
        best = int(np.argmax(study_p))
        ranking = abnormality(probs, self.normal) if self.normal is not None else probs[:, best]
        top = [int(r) for r in np.argsort(-ranking, kind="stable")[:n_top]]
        heights = slice_heights(volume)
        top_slices = [{"index": pick.indices[r], "z_mm": heights[pick.indices[r]],
                       "probabilities": {c: float(v) for c, v in zip(self.class_names, probs[r])}} for r in top]
        warnings = list(getattr(volume, "notes", []))
        if tuple(self.window) != tuple(PICK_WINDOW):
            warnings.append(f"liver slices were found in the abdomen window; the model reads them in its own window "
                            f"L{self.window[0]:g}/W{self.window[1]:g}")
        if len(pick.indices) < 3:
            warnings.append(f"only {len(pick.indices)} slice(s) show the liver; the study answer rests on them")
        if used != rule:
            warnings.append(f"the model card names no normal class, so the {rule} rule fell back to the mean")
        inputs = {pick.indices[r]: greys[r] for r in top}
        heatmaps = {}
        if gradcam:
            maps = self.explain(x[top])
            heatmaps = {pick.indices[r]: m for r, m in zip(top, maps)}
        return StudyResult(file=file if file is not None else str(name), study=study, n_slices=len(hu),
                           liver_slices=pick.indices,
                           probabilities={c: float(v) for c, v in zip(self.class_names, study_p)},
                           predicted_class=self.class_names[best], rule=used, top_slices=top_slices,
                           slice_probabilities=probs, z_mm=heights, warnings=warnings,
                           seconds=time.perf_counter() - start, model_inputs=inputs, heatmaps=heatmaps)


def get_study_classifier(model_dir: str | os.PathLike) -> StudyClassifier:
    """The study classifier of a run folder, made on first use and kept while the model file is unchanged."""
    return cached(model_dir, StudyClassifier)


def classify_volume(volume, model_dir: str | os.PathLike, name: str = "volume", **kwargs) -> StudyResult:
    """Classify one :class:`~liverlib.imaging.volume.Volume` (``hu[z, y, x]``, radiological view, head first)."""
    return get_study_classifier(model_dir)(volume, name, **kwargs)


def classify_study(path: str | os.PathLike, model_dir: str | os.PathLike, **kwargs) -> list[StudyResult]:
    """Classify a study given as a DICOM series folder, a .nii/.nii.gz volume or a .zip of either: one result
    per axial CT series (``series`` numbers them when there are several)."""
    from liverlib.imaging.studies import read_study  # local: pydicom and nibabel

    classifier = get_study_classifier(model_dir)
    volumes = read_study(path)
    results = []
    for number, volume in enumerate(volumes, start=1):
        result = classifier(volume, Path(path).name, file=str(path), **kwargs)
        result.series = number if len(volumes) > 1 else None
        results.append(result)
    return results
