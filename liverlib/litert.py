"""The forward pass on LiteRT (TensorFlow Lite's runtime with XNNPACK): about twice as fast on a CPU.

For one slice at 224 px on the 2-core CPU this course is built on, ``model.predict`` takes about 190 ms,
a ``tf.function`` with a fixed input signature about 100 ms and the same model on LiteRT about 50 ms
(``python -m benchmarks.classify_latency``). Grad-CAM needs gradients, so it stays in TensorFlow; the
probabilities alone (``classify(..., gradcam=False)``, the CLI) take the fast path.

:func:`export_litert` converts a run's ``model.keras`` with Keras' own exporter into ``model.tflite`` next
to it, checks that the converted model gives the Keras model's probabilities within ``TOLERANCE`` on a
synthetic CT-like slice and on noise, and records the model's SHA-256 and the difference it measured in
``model.tflite.json``. :func:`fast_forward` reuses that file while the model is unchanged, converts again
when it is stale or unreadable, and otherwise falls back to TensorFlow, saying why.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from liverlib.environment import versions
from liverlib.errors import LiverlibError
from liverlib.preprocess import to_model_input
from liverlib.runs import MODEL_FILE, load_run

LITERT_FILE = "model.tflite"
LITERT_INFO = "model.tflite.json"
TOLERANCE = 1e-5  # largest allowed |probability difference| between LiteRT and Keras


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def runtime_available() -> str | None:
    """None if the LiteRT interpreter can be imported, otherwise why not."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    except Exception as error:  # ImportError, or a broken wheel on an unsupported platform
        return f"the LiteRT runtime (package ai-edge-litert) is not available: {error}"
    return None


class LiteRTForward:
    """A converted model on the LiteRT interpreter, for one slice at a time: ``forward(x)`` -> probabilities.

    ``x`` is 1 x S x S x 3 float32, exactly what the Keras model takes.
    """

    def __init__(self, path: Path, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter  # local: optional heavy dependency

        threads = threads or os.cpu_count() or 1
        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        entry = self._interpreter.get_input_details()[0]
        self.input_shape = tuple(int(d) for d in entry["shape"])
        if self.input_shape[0] != 1:
            self._interpreter.resize_tensor_input(entry["index"], [1, *self.input_shape[1:]])
            self.input_shape = (1, *self.input_shape[1:])
        self._interpreter.allocate_tensors()
        self._input = entry["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self.threads = threads

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape != self.input_shape:
            raise LiverlibError(f"the LiteRT model takes {self.input_shape}, got {x.shape}")
        self._interpreter.set_tensor(self._input, x)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()


def synthetic_slice(size: int, seed: int = 0) -> np.ndarray:
    """A CT-like grey slice (size x size uint8), the same for the same arguments: dark air around a body
    of soft tissue (grey 110) with a brighter liver (150), a dark lesion in it (80), a bright spine (230)
    and mild noise. Structure at every scale and the whole grey range, as a real slice has."""
    rows, cols = (np.mgrid[0:size, 0:size] + 0.5) / size
    grey = np.full((size, size), 5.0)
    grey[((cols - 0.5) / 0.42) ** 2 + ((rows - 0.52) / 0.34) ** 2 <= 1] = 110  # body
    grey[((cols - 0.36) / 0.18) ** 2 + ((rows - 0.45) / 0.14) ** 2 <= 1] = 150  # liver
    grey[((cols - 0.33) / 0.05) ** 2 + ((rows - 0.43) / 0.05) ** 2 <= 1] = 80  # lesion
    grey[((cols - 0.5) / 0.05) ** 2 + ((rows - 0.74) / 0.05) ** 2 <= 1] = 230  # spine
    grey += np.random.default_rng(seed).normal(0, 6, grey.shape)
    return np.clip(np.round(grey), 0, 255).astype(np.uint8)


def probe_inputs(input_size: int) -> list[np.ndarray]:
    """Inputs on which a conversion is checked, as the model takes them: a synthetic CT-like slice
    (:func:`synthetic_slice`) and uniform noise."""
    noise = np.random.default_rng(0).uniform(0, 1, (input_size, input_size, 3)).astype(np.float32)
    return [to_model_input(synthetic_slice(input_size))[None], noise[None]]


def max_difference(forward: Callable[[np.ndarray], np.ndarray], model, inputs: list[np.ndarray]) -> float:
    """Largest |probability difference| between ``forward`` and the Keras model over ``inputs``."""
    return max(float(np.abs(forward(x) - model.predict(x, verbose=0)).max()) for x in inputs)


def _convert(model, path: Path) -> None:
    """Keras' own LiteRT exporter (TensorFlow's converter underneath)."""
    model.export(str(path), format="litert", verbose=False)


def export_litert(run_dir: str | os.PathLike, model=None, out_dir: str | os.PathLike | None = None,
                  model_sha256: str | None = None) -> Path:
    """Convert a run's model to LiteRT, check it against Keras, and write it with its record.

    ``out_dir`` defaults to the run folder; ``model_sha256`` (of ``model.keras``) is computed if not given.
    The file appears only after it passed the check (written to a temporary name, then renamed), so an
    interrupted conversion never leaves a half-written model behind.
    Raises :class:`LiverlibError` if the runtime is missing or the outputs differ by more than ``TOLERANCE``.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir
    problem = runtime_available()
    if problem:
        raise LiverlibError(problem + "; install it with `pip install ai-edge-litert` (Linux or macOS)")
    if model is None:
        model = load_run(run_dir).model
    size = int(model.inputs[0].shape[1])
    sha = model_sha256 or file_sha256(run_dir / MODEL_FILE)
    print(f"liverlib: converting {run_dir.name}/{MODEL_FILE} to LiteRT for fast CPU inference "
          "(once per model; about 15-20 s)", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".litert-") as tmp:
        tmp_model = Path(tmp) / LITERT_FILE
        _convert(model, tmp_model)
        diff = max_difference(LiteRTForward(tmp_model), model, probe_inputs(size))
        if diff > TOLERANCE:
            raise LiverlibError(f"the LiteRT conversion of {run_dir} differs from the Keras model by {diff:.2g} "
                                f"(more than {TOLERANCE:g}); classify keeps using TensorFlow")
        info = {"model_sha256": sha, "input_size": size, "max_abs_difference_vs_keras": diff,
                "tolerance": TOLERANCE, "versions": versions(("tensorflow-cpu", "keras", "ai-edge-litert"))}
        os.replace(tmp_model, out_dir / LITERT_FILE)
        (Path(tmp) / LITERT_INFO).write_text(json.dumps(info, indent=2) + "\n")
        os.replace(Path(tmp) / LITERT_INFO, out_dir / LITERT_INFO)
    return out_dir / LITERT_FILE


@dataclass
class FastForward:
    """The forward pass classify uses, and in words what it is (shown by the CLI and the benchmarks)."""

    forward: Callable[[np.ndarray], np.ndarray]
    backend: str


def _cached(run_dir: Path, sha: str) -> LiteRTForward | None:
    try:
        info = json.loads((run_dir / LITERT_INFO).read_text())
        if info.get("model_sha256") != sha or info.get("max_abs_difference_vs_keras", 1.0) > TOLERANCE:
            return None
        return LiteRTForward(run_dir / LITERT_FILE)
    except Exception:  # missing, stale, truncated or corrupted: convert again
        return None


def fast_forward(run_dir: str | os.PathLike, model, fallback: Callable[[np.ndarray], np.ndarray]) -> FastForward:
    """LiteRT for this run's model if it can be had (cached, or converted now), else ``fallback``.

    Set ``LIVERLIB_FAST_FORWARD=0`` to always use the fallback (TensorFlow).
    """
    run_dir = Path(run_dir)
    tf_backend = "TensorFlow (tf.function)"
    if os.environ.get("LIVERLIB_FAST_FORWARD", "1").strip().lower() in ("0", "false", "no", "off"):
        return FastForward(fallback, f"{tf_backend}: LIVERLIB_FAST_FORWARD is off")
    problem = runtime_available()
    if problem:
        return FastForward(fallback, f"{tf_backend}: {problem}")
    sha = file_sha256(run_dir / MODEL_FILE)
    cached = _cached(run_dir, sha)
    if cached is not None:
        return FastForward(cached, f"LiteRT (XNNPACK, {cached.threads} threads)")
    try:
        try:
            export_litert(run_dir, model, model_sha256=sha)
            forward = LiteRTForward(run_dir / LITERT_FILE)
            where = ""
        except PermissionError:  # a read-only run folder: convert into a temporary folder, every time, and
            # remove it once the interpreter holds the model (it maps the file, which outlives its name)
            with tempfile.TemporaryDirectory(prefix="liverlib-litert-") as tmp:
                forward = LiteRTForward(export_litert(run_dir, model, out_dir=Path(tmp), model_sha256=sha))
            where = f", converted in a temporary folder because {run_dir} is read-only"
    except LiverlibError as error:
        return FastForward(fallback, f"{tf_backend}: {error}")
    except Exception as error:  # the converter failing on an unusual model must not stop classification
        return FastForward(fallback, f"{tf_backend}: the LiteRT conversion failed ({type(error).__name__}: "
                                     f"{str(error).splitlines()[0] if str(error) else ''})")
    return FastForward(forward, f"LiteRT (XNNPACK, {forward.threads} threads{where})")
