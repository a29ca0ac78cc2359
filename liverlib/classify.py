"""Classify one slice: bytes in, class probabilities, Grad-CAM and warnings out.

:func:`classify` is a pure function of the file's bytes, its name and a run folder. It applies exactly
the preprocessing recorded in the run's model card (DICOM: HU, then the card's window; every format:
grey, bilinear resize to the card's input size, grey copied to 3 channels, /255) and returns the
probabilities in the card's class order. The model is loaded once per run folder and kept (see
:func:`get_classifier` and :func:`liverlib.runs.cached`). Without Grad-CAM the forward pass runs on
LiteRT where it is installed (twice as fast on a CPU; see :mod:`liverlib.litert`), which converts the
model once and keeps ``model.tflite`` in the run folder; nothing else is written to disk.

Every problem with the file comes back as a :class:`~liverlib.errors.LiverlibError` whose message names
the file and says what would work; callers (the CLI, the widget) show it and go on with the next file.
"""

from __future__ import annotations

import os
import re
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liverlib.errors import LiverlibError
from liverlib.imaging.decode import IMAGE_SUFFIXES, decode_image
from liverlib.litert import fast_forward
from liverlib.preprocess import normalise, prepare_grey
from liverlib.runs import cached, load_run

LIVER_HU = (40.0, 160.0)  # unenhanced (55-65 HU) to portal-venous (100-130 HU) liver, with margin
MIN_LIVER_FRACTION = 0.02  # a slice through the liver has far more than 2% of its pixels in that range
DISCLAIMER = ("For teaching only: not a medical device and not for diagnosis. ")


@dataclass
class Classification:
    """The result for one file."""

    file: str  # the file's name as given (directories and control characters removed)
    predicted_class: str
    probabilities: dict[str, float]  # class name -> probability, in the model card's class order
    warnings: list[str]
    seconds: float  # decode + preprocess + forward (+ Grad-CAM)
    model_input: np.ndarray = field(repr=False)  # size x size uint8: the slice as the model sees it
    heatmap: np.ndarray | None = field(default=None, repr=False)  # size x size in [0, 1], predicted class
    source: dict = field(default_factory=dict)  # format, mode, width, height, bits, window of the file

    @property
    def confidence(self) -> float:
        return self.probabilities[self.predicted_class]

    def as_json(self) -> dict:
        return {"file": self.file, "predicted_class": self.predicted_class,
                "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
                "confidence": round(self.confidence, 6), "warnings": self.warnings,
                "seconds": round(self.seconds, 4), **self.source}


def display_name(filename: str | os.PathLike | None) -> str:
    """A file name safe to show and to put in JSON: the last path component, printable characters only."""
    name = re.split(r"[\\/]", str(filename or ""))[-1]
    name = "".join(ch if unicodedata.category(ch)[0] != "C" else "?" for ch in name).strip()
    if len(name) > 120:
        name = name[:80] + "..." + name[-37:]
    return name or "unnamed file"


class Classifier:
    """A trained run, loaded once, that classifies slices with the preprocessing of its model card."""

    def __init__(self, model_dir: str | os.PathLike):
        import tensorflow as tf  # local: heavy dependency

        from liverlib.explain import GradCam  # local: explain imports Keras

        run = cached(model_dir, load_run)  # the loaded run evaluation shares
        self.run_dir = run.run_dir
        self.card = run.card
        self.model = run.model
        self.class_names = list(self.card["class_names"])
        self.input_size = int(self.card["input_size"])
        self.window = (float(self.card["window"]["level"]), float(self.card["window"]["width"]))
        self.synthetic = bool(self.card.get("synthetic_data", True))
        self.crop = str(self.card.get("crop", "none"))  # cards written before the crop existed: the whole slice
        self.normalisation = str(self.card.get("input_normalisation", "unit"))
        in_shape, out_shape = tuple(self.model.inputs[0].shape[1:]), self.model.outputs[0].shape[-1]
        if in_shape != (self.input_size, self.input_size, 3) or out_shape != len(self.class_names):
            raise LiverlibError(f"the model in {self.run_dir} takes {in_shape} and gives {out_shape} outputs, but its "
                                f"card says {self.input_size} px and {len(self.class_names)} classes; the run folder "
                                "is inconsistent, retrain it")
        spec = tf.TensorSpec((1, self.input_size, self.input_size, 3), tf.float32)
        self._forward = tf.function(lambda x: self.model(x, training=False), input_signature=[spec])
        self._gradcam = GradCam(self.model)
        self._fast = None  # liverlib.litert.FastForward, made on the first call without Grad-CAM

    @property
    def fast(self):
        """The forward pass used without Grad-CAM (LiteRT where possible) and its description."""
        if self._fast is None:
            self._fast = fast_forward(self.run_dir, self.model, lambda x: self._forward(x).numpy())
        return self._fast

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for one preprocessed slice (1 x S x S x 3), on the fastest path available."""
        return self.fast.forward(np.asarray(x, dtype=np.float32))

    def preprocess(self, data: bytes, filename: str = "the file",
                   window: tuple[float, float] | None = None) -> tuple[np.ndarray, dict, list[str]]:
        """The file as the model sees it (size x size uint8), a description of the file, and warnings."""
        name = display_name(filename)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise LiverlibError(f"{name}: expected the file's bytes, got {type(data).__name__}")
        decoded = decode_image(bytes(data), name, window or self.window)
        notes = list(decoded.warnings)
        if decoded.format == "DICOM" and window and tuple(window) != self.window:
            notes.append(f"window L{window[0]:g}/W{window[1]:g} differs from the one the model was trained with "
                         f"(L{self.window[0]:g}/W{self.window[1]:g}); predictions may be unreliable")
        model_input, crop = prepare_grey(decoded.grey8, self.input_size, self.crop, decoded.window or self.window)
        if crop.note:
            notes.append(f"{name}: {crop.note}; the model was trained on crops of the liver region")
        aspect = max(crop.bottom - crop.top, crop.right - crop.left) / max(min(crop.bottom - crop.top,
                                                                               crop.right - crop.left), 1)
        if aspect > 1.25:
            notes.append(f"{name} is {decoded.width} x {decoded.height}; it was stretched to a square "
                         f"{self.input_size} x {self.input_size}, which distorts the anatomy")
        notes += self._plausibility(decoded.grey, name, decoded.window or self.window)
        source = {"format": decoded.format, "mode": decoded.mode, "width": decoded.width, "height": decoded.height,
                  "bits": decoded.bits, "window": list(decoded.window) if decoded.window else None,
                  "crop": {"method": crop.method, "rows": [crop.top, crop.bottom], "columns": [crop.left, crop.right]}}
        return model_input, source, notes

    @staticmethod
    def _plausibility(grey: np.ndarray, name: str, window: tuple[float, float]) -> list[str]:
        level, width = window
        hu = level - width / 2 + grey / 255.0 * width  # display grey back to HU (exact for DICOM)
        liver_like = float(((hu >= LIVER_HU[0]) & (hu <= LIVER_HU[1])).mean())
        if liver_like < MIN_LIVER_FRACTION:
            return [f"no liver-like tissue in the window: only {liver_like:.1%} of {name} lies between "
                    f"{LIVER_HU[0]:g} and {LIVER_HU[1]:g} HU (read with window L{level:g}/W{width:g}); is it an "
                    "abdominal CT slice through the liver?"]
        return []

    def __call__(self, data: bytes, filename: str = "the file", window: tuple[float, float] | None = None,
                 gradcam: bool = True) -> Classification:
        start = time.perf_counter()
        model_input, source, notes = self.preprocess(data, filename, window)
        x = normalise(np.repeat(model_input[..., None], 3, axis=-1), self.normalisation)[None]
        heatmap = None
        if gradcam:
            from liverlib.explain import upsample  # local: explain imports Keras

            probs, cams = self._gradcam(x)
            heatmap = upsample(cams[0], self.input_size)
        else:
            probs = self.forward(x)
        probs = probs[0].astype(np.float64)
        if not np.all(np.isfinite(probs)):
            raise LiverlibError(f"the model in {self.run_dir} gave non-finite outputs for {display_name(filename)}; "
                                "the model is broken (retrain it)")
        probs = probs / probs.sum()
        best = int(np.argmax(probs))
        return Classification(file=display_name(filename), predicted_class=self.class_names[best],
                              probabilities={c: float(p) for c, p in zip(self.class_names, probs)}, warnings=notes,
                              seconds=time.perf_counter() - start, model_input=model_input, heatmap=heatmap,
                              source=source)

    def disclaimer(self) -> str:
        trained_on = ("synthetic CT phantom data, not real patients" if self.synthetic
                      else "the data this run was trained on (see its model card)")
        return DISCLAIMER + f"This model was trained on {trained_on}."


def get_classifier(model_dir: str | os.PathLike) -> Classifier:
    """The classifier for a run folder, loaded on first use and kept while the model file is unchanged."""
    return cached(model_dir, Classifier)


def classify(data: bytes, filename: str, model_dir: str | os.PathLike, *, window: tuple[float, float] | None = None,
             gradcam: bool = True) -> Classification:
    """Classify one slice given as the bytes of a PNG, JPEG, BMP, TIFF or DICOM file.

    ``window`` (level, width in HU) applies to DICOM only; the default is the model card's window.
    """
    return get_classifier(model_dir)(data, filename, window=window, gradcam=gradcam)


def iter_inputs(paths) -> list[Path]:
    """Files given on a command line: files as they are, folders expanded (recursively) to their image files."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                            and p.suffix.lower() in IMAGE_SUFFIXES)
            found.extend(inside or [path])  # an empty folder is reported as an error by the caller
        else:
            found.append(path)
    return found
