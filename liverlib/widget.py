"""Upload slices or whole studies and classify them: an ipywidgets app for notebooks and for Voilà (``make app``).

For each uploaded slice the app shows the slice as the model sees it, the class probabilities as bars,
the Grad-CAM overlay for the predicted class, and any warnings; slices are read from memory. An uploaded
study (a ``.nii``/``.nii.gz`` volume or a ``.zip`` of a DICOM series) gets the study's answer, the strip
plot of its per-slice probabilities along z and its top slices with Grad-CAM
(:mod:`liverlib.study_widget`; the study is written to a private temporary folder while it is read). A
file that cannot be classified shows one readable error and the app goes on; no traceback ever reaches
the page. An upload over the app's size limit (all its files together) is refused with a message that
says so: in the browser before it is sent, else in the kernel.

``ClassifyApp.process(files)`` is the same callback the upload button triggers; notebooks and tests call
it with (name, bytes) pairs.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

import numpy as np

from liverlib.aggregate import DEFAULT_RULE, RULES
from liverlib.classify import DISCLAIMER, Classification, display_name, get_classifier
from liverlib.config import load_config
from liverlib.errors import LiverlibError
from liverlib.runs import latest_run
from liverlib.study_widget import (bars_html, classify_study_upload, is_study_upload, max_upload_bytes, size_text,
                                   study_html, too_large_message, upload_guard_html, warnings_html)
from liverlib.imaging.windowing import WINDOWS

ACCEPT = ".png,.jpg,.jpeg,.bmp,.tif,.tiff,.dcm,.dicom,.nii,.gz,.zip"  # .gz: browsers match one suffix, not .nii.gz
MAX_FILES_PER_UPLOAD = 50
MODEL_ENV = "LIVERLIB_MODEL"


def _png_data_uri(image: np.ndarray, width: int = 200) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return (f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}" width="{width}" '
            'style="image-rendering: pixelated; margin-right: 8px">')


def result_html(result: Classification) -> str:
    """One file's result as HTML: slice, Grad-CAM overlay, probability bars, warnings."""
    from liverlib.explain import overlay  # local: explain imports Keras

    images = _png_data_uri(result.model_input)
    if result.heatmap is not None:
        images += _png_data_uri(overlay(result.model_input, result.heatmap))
    return (f'<div class="liverlib-result" style="margin: 8px 0; padding: 6px; border: 1px solid #ddd">'
            f'<div><b>{html.escape(result.file)}</b>: predicted <b class="liverlib-predicted">'
            f'{html.escape(result.predicted_class)}</b> (probability {result.confidence:.2f}, '
            f'{result.seconds * 1000:.0f} ms)</div>'
            f'<div style="display: flex; align-items: center">{images}'
            f'{bars_html(result.probabilities, result.predicted_class)}</div>'
            f'<div style="font-size: 85%; color: #555">left: the slice as the model sees it; right: Grad-CAM for '
            f'the predicted class (red: strongest evidence). For teaching only, not for diagnosis.</div>'
            f'{warnings_html(result.warnings)}</div>')


def error_html(name: str, message: str, verb: str = "could not be classified:") -> str:
    return (f'<div class="liverlib-error" style="margin: 8px 0; padding: 6px; border: 1px solid #d62728; '
            f'color: #8b0000"><b>{html.escape(display_name(name))}</b> {verb + " " if verb else ""}'
            f'{html.escape(message)}</div>')


def find_run(config=None) -> Path | None:
    """The model to serve: ``$LIVERLIB_MODEL`` if set, else the newest finished run of the profile."""
    if os.environ.get(MODEL_ENV):
        return Path(os.environ[MODEL_ENV]).expanduser()
    return latest_run(config or load_config(), same_settings=False)


class ClassifyApp:
    """The upload-and-classify app for one run folder."""

    def __init__(self, model_dir: str | os.PathLike | None, gradcam: bool = True, max_upload: int | None = None):
        import ipywidgets as widgets

        self.model_dir = Path(model_dir) if model_dir else None
        self.gradcam = gradcam
        self.max_upload = int(max_upload) if max_upload is not None else max_upload_bytes()  # bytes per upload
        self.classifier = None
        load_error = None
        try:
            if self.model_dir is None:
                raise LiverlibError("no trained model was found; train one (`liverlib train`, or run notebook "
                                    f"05_training) or set {MODEL_ENV} to a run folder")
            self.classifier = get_classifier(self.model_dir)
        except LiverlibError as exc:
            load_error = str(exc)
        except Exception as exc:  # a broken model file must not kill the page
            load_error = f"the model could not be loaded ({type(exc).__name__}: {exc})"

        notice = self.classifier.disclaimer() if self.classifier else DISCLAIMER
        self.notice = widgets.HTML(f'<div style="padding: 6px; background: #fff3cd; border: 1px solid #e0c36a">'
                                   f'{html.escape(notice)}</div>')
        default = self.classifier.window if self.classifier else WINDOWS["abdomen"]
        options = [(f"as trained: L{default[0]:g}/W{default[1]:g}", "trained")]
        options += [(f"{name}: L{lvl:g}/W{wid:g}", name) for name, (lvl, wid) in WINDOWS.items()]
        self.window = widgets.Dropdown(options=options, value="trained", description="DICOM window",
                                       style={"description_width": "initial"})
        self.rule = widgets.Dropdown(options=list(RULES), value=DEFAULT_RULE, description="study rule",
                                     style={"description_width": "initial"})
        self.upload = widgets.FileUpload(accept=ACCEPT, multiple=True, description="Upload slices or a study",
                                         disabled=self.classifier is None, layout=widgets.Layout(width="auto"))
        self.status = widgets.HTML(error_html("the model", load_error) if load_error else
                                   "Upload PNG, JPEG, BMP, TIFF or DICOM slices (several at once is fine), or a "
                                   "whole study: a .nii/.nii.gz volume or a .zip of a DICOM series (up to "
                                   f"{size_text(self.max_upload)} per upload).")
        self.status.add_class("liverlib-status")
        self.results = widgets.HTML("")
        self.upload.observe(self._on_upload, names="value")
        self.widget = widgets.VBox([self.notice, widgets.HBox([self.upload, self.window, self.rule]), self.status,
                                    self.results])
        self.widget.add_class("liverlib-app")
        self.widget.add_class(f"liverlib-max-upload-{self.max_upload}")  # read by the browser's size guard

    def _ipython_display_(self):
        from IPython.display import HTML, display

        display(HTML(upload_guard_html()))  # refuses an over-limit upload before the browser sends it
        display(self.widget)

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        try:
            self.process([(f.get("name", ""), f.get("content", b"")) for f in files])
        finally:
            self.upload.value = ()  # so the same file can be uploaded again

    def process(self, files) -> list:
        """Classify (name, bytes) pairs, slices and studies; show and return each outcome: a Classification per
        slice, a StudyResult per series of a study, or the file's error message."""
        outcomes: list = []
        parts = []
        files = list(files)
        if self.classifier is None:
            return ["no model is loaded"]
        total = sum(len(content) for _, content in files)
        if total > self.max_upload:  # the browser's guard refuses these first where its script runs
            message = too_large_message(total, self.max_upload, len(files))
            self.status.value = error_html(", ".join(display_name(name) for name, _ in files), message, verb="")
            self.results.value = ""
            return [message]
        if len(files) > MAX_FILES_PER_UPLOAD:
            parts.append(error_html(f"{len(files)} files", f"at most {MAX_FILES_PER_UPLOAD} files per upload here; "
                                    "upload a DICOM series as one .zip of its folder, or use `liverlib classify "
                                    "FOLDER --model RUN`"))
            files = files[:MAX_FILES_PER_UPLOAD]
        done = 0
        for number, (name, content) in enumerate(files, start=1):
            study = is_study_upload(name)
            self.status.value = (f"{'reading and classifying the study' if study else 'classifying'} "
                                 f"{html.escape(display_name(name))} ({number} of {len(files)})...")
            try:
                if study:
                    results = classify_study_upload(content, name, self.model_dir, rule=self.rule.value,
                                                    gradcam=self.gradcam)
                    parts.extend(study_html(r) for r in results)
                else:
                    results = [self.classifier(bytes(content), name, window=WINDOWS.get(self.window.value),
                                               gradcam=self.gradcam)]
                    parts.append(result_html(results[0]))
            except LiverlibError as exc:
                outcomes.append(str(exc))
                parts.append(error_html(name, str(exc)))
            except Exception as exc:  # never a traceback on the page; the next file still runs
                message = f"unexpected {type(exc).__name__}: {exc}"
                outcomes.append(message)
                parts.append(error_html(name, message))
            else:
                outcomes.extend(results)
                done += 1
        self.status.value = (f"{done} of {len(files)} file(s) classified with "
                             f"{html.escape(self.classifier.run_dir.name)}.")
        self.results.value = "".join(parts)
        return outcomes


def classify_widget(model_dir: str | os.PathLike | None = None) -> ClassifyApp:
    """The app for ``model_dir`` (default: :func:`find_run`)."""
    return ClassifyApp(model_dir if model_dir is not None else find_run())
