"""The upload app's whole-study side: pure functions the widget (:mod:`liverlib.widget`) calls and tests call.

* :func:`is_study_upload`: a ``.nii``/``.nii.gz`` volume or a ``.zip`` (of a DICOM series or of NIfTI files) is
  a study; anything else is a slice.
* :func:`classify_study_upload`: an uploaded study's bytes in, one :class:`~liverlib.study_classify.StudyResult`
  per axial CT series out. :func:`liverlib.imaging.studies.read_study` reads paths, so the bytes are written to a
  private temporary folder that is removed before the function returns; messages name the upload, never
  that folder.
* :func:`study_html`: a study's answer as HTML: the study probabilities and predicted class with the rule
  that combined the slices, the strip plot of per-slice probabilities along z, and the top slices as the
  model saw them with their Grad-CAM.
* Upload size: every file of one upload travels to the kernel in one websocket message, so one limit
  bounds an upload's total size (:data:`MAX_UPLOAD_MB`, or ``$LIVERLIB_APP_MAX_UPLOAD_MB``).
  :func:`too_large_message` says so in the kernel; :func:`upload_guard_html` says it in the browser before
  the file is read or sent (an upload larger than the server's transport limit would otherwise close the page's
  connection to the kernel). :func:`transport_limit_bytes` is what the web server must accept
  (:mod:`liverlib.app_server`).
"""

from __future__ import annotations

import base64
import html
import io
import os
import tempfile
from pathlib import Path

import numpy as np

from liverlib.aggregate import TOP_K
from liverlib.errors import LiverlibError

STUDY_SUFFIXES = (".nii", ".nii.gz", ".zip")
MAX_UPLOAD_MB = 400  # MiB per upload: a 300 MB zip of a thin-slice series goes through, with room to spare
MAX_UPLOAD_ENV = "LIVERLIB_APP_MAX_UPLOAD_MB"
TRANSPORT_MARGIN_MB = 16  # the websocket message's own bytes (JSON header, file names) above the files
RULE_TEXT = {"mean": "the mean of all {n} liver slices",
             "top-k": "the mean of the {k} most abnormal of {n} liver slices",
             "noisy-or": "noisy-OR over {n} liver slices (normal only if every slice is)"}


def is_study_upload(name: str) -> bool:
    return str(name).lower().endswith(STUDY_SUFFIXES)


def max_upload_bytes() -> int:
    """The app's limit on one upload (all its files together): ``$LIVERLIB_APP_MAX_UPLOAD_MB`` MiB, else
    :data:`MAX_UPLOAD_MB`."""
    raw = os.environ.get(MAX_UPLOAD_ENV, "").strip()
    try:
        mb = float(raw) if raw else float(MAX_UPLOAD_MB)
    except ValueError:
        mb = float(MAX_UPLOAD_MB)
    return int(max(mb, 0.001) * 2**20)


def transport_limit_bytes(limit: int | None = None) -> int:
    """What the web server must accept in one websocket message for uploads up to ``limit`` bytes to reach
    the kernel (which then says whether they are over the limit)."""
    limit = max_upload_bytes() if limit is None else int(limit)
    return limit + max(limit // 10, TRANSPORT_MARGIN_MB * 2**20)


def size_text(n: float) -> str:
    """Bytes as people read them: 812 bytes, 3.4 MB, 1.2 GB (MiB and GiB, as the limit is set)."""
    if n < 2**20:
        return f"{n / 2**10:.0f} KB" if n >= 2**10 else f"{int(n)} bytes"
    return f"{n / 2**20:.0f} MB" if n < 2**30 else f"{n / 2**30:.1f} GB"


def too_large_message(total: int, limit: int, n_files: int = 1) -> str:
    what = f"{size_text(total)}" if n_files == 1 else f"{n_files} files of {size_text(total)} together"
    return (f"not uploaded: {what}, over this app's upload limit of {size_text(limit)}; classify it with "
            "`liverlib classify FILE --model RUN` on the command line, or start the app with a higher "
            "`liverlib app --max-upload-mb`")


def upload_guard_html(css_class: str = "liverlib-app") -> str:
    """A script that refuses, in the browser, an upload over the app's limit before it is read or sent.

    ipywidgets' FileUpload keeps its file input out of the page (the button opens it), so no listener in the
    page sees its ``change`` event: the script wraps the ``change`` listeners that file inputs are given
    (the FileUpload view adds its own when it is drawn, after this script ran) and skips them when the
    selected files together exceed the limit, read from the app's CSS class ``liverlib-max-upload-<bytes>``.
    The message goes where the app shows its status. Where scripts do not run (an untrusted notebook), the
    kernel's check remains."""
    return """<script>
(function () {
  if (window.liverlibUploadGuard) { return; }
  window.liverlibUploadGuard = true;
  function size(n) {
    return n < 1048576 ? Math.round(n / 1024) + " KB" : (n < 1073741824 ? Math.round(n / 1048576) + " MB"
      : (n / 1073741824).toFixed(1) + " GB");
  }
  function escape(s) { var d = document.createElement("div"); d.textContent = s; return d.innerHTML; }
  function refused(input) {  /* true (and a message shown) when the selected files exceed the app's limit */
    var apps = document.querySelectorAll(".%(app)s"), app = null, limit = 0;
    for (var a = 0; a < apps.length && !app; a++) {
      var match = /liverlib-max-upload-(\\d+)/.exec(apps[a].className);
      if (match) { app = apps[a]; limit = Number(match[1]); }
    }
    if (!app || !input.files || !input.files.length) { return false; }
    var total = 0, names = [];
    for (var i = 0; i < input.files.length; i++) { total += input.files[i].size; names.push(input.files[i].name); }
    if (total <= limit) { return false; }
    input.value = "";
    var what = names.length === 1 ? size(total) : names.length + " files of " + size(total) + " together";
    var status = app.querySelector(".liverlib-status");
    var target = status && (status.querySelector(".widget-html-content") || status);
    if (target) {
      target.innerHTML = '<div class="liverlib-error liverlib-too-large" style="margin: 8px 0; padding: 6px; '
        + 'border: 1px solid #d62728; color: #8b0000"><b>' + escape(names.join(", ")) + "</b> not uploaded: "
        + what + ", over this app's upload limit of " + size(limit) + "; classify it with "
        + "<code>liverlib classify FILE --model RUN</code> on the command line, or start the app with a higher "
        + "<code>liverlib app --max-upload-mb</code></div>";
    }
    return true;
  }
  var wrapped = new WeakMap(), add = HTMLInputElement.prototype.addEventListener;
  var remove = HTMLInputElement.prototype.removeEventListener;
  HTMLInputElement.prototype.addEventListener = function (type, listener, options) {
    if (type === "change" && this.type === "file" && typeof listener === "function") {
      var original = listener;
      listener = wrapped.get(original) || function () {
        if (!refused(this)) { return original.apply(this, arguments); }
      };
      wrapped.set(original, listener);
    }
    return add.call(this, type, listener, options);
  };
  HTMLInputElement.prototype.removeEventListener = function (type, listener, options) {
    return remove.call(this, type, (typeof listener === "function" && wrapped.get(listener)) || listener, options);
  };
})();
</script>""" % {"app": css_class}


def classify_study_upload(data: bytes, name: str, model_dir, rule: str = "top-k", gradcam: bool = True,
                          k: int = TOP_K) -> list:
    """Classify an uploaded study (its bytes and file name): one StudyResult per axial CT series, named by
    the upload's file name. Bad studies raise :class:`LiverlibError` with the study reader's message."""
    from liverlib.classify import display_name
    from liverlib.imaging.studies import read_study  # local: pydicom and nibabel
    from liverlib.study_classify import get_study_classifier

    shown = display_name(name)
    if not data:
        raise LiverlibError(f"{shown} is empty (0 bytes); upload the study again")
    lower = str(name).lower()
    suffix = ".nii.gz" if lower.endswith(".nii.gz") else ".nii" if lower.endswith(".nii") else ".zip"
    with tempfile.TemporaryDirectory(prefix="liverlib-upload-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)

        def hide(text: str) -> str:  # the upload's name, never the temporary folder
            return text.replace(str(path), shown).replace(tmp + os.sep, "").replace(tmp, shown)

        try:
            volumes = read_study(path)
            classifier = get_study_classifier(model_dir)
            results = []
            for number, volume in enumerate(volumes, start=1):
                result = classifier(volume, shown, rule=rule, k=k, gradcam=gradcam, file=shown)
                result.series = number if len(volumes) > 1 else None
                result.warnings = [hide(w) for w in result.warnings]
                results.append(result)
        except LiverlibError as exc:
            raise LiverlibError(hide(" ".join(str(exc).split()))) from None
    return results


def _png_uri(image_or_figure, width: int | None = None, css: str = "") -> str:
    buf = io.BytesIO()
    if isinstance(image_or_figure, np.ndarray):
        from PIL import Image

        Image.fromarray(image_or_figure).save(buf, format="PNG")
    else:
        import matplotlib.pyplot as plt

        image_or_figure.savefig(buf, format="png", dpi=80)
        plt.close(image_or_figure)  # figures made in a callback must not pile up in pyplot
    size = f' width="{width}"' if width else ""
    return (f'<img class="{css}" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"{size} '
            'style="image-rendering: pixelated; margin-right: 6px">')


def strip_figure(result):
    """The strip plot of a :class:`StudyResult`: per-slice probabilities along z, every slice ticked, the top
    slices dashed."""
    from liverlib.plots import study_strip_figure  # local: matplotlib

    z = [result.z_mm[i] for i in result.liver_slices]
    return study_strip_figure(z, result.slice_probabilities, list(result.probabilities), all_z_mm=result.z_mm,
                              top_z_mm=[t["z_mm"] for t in result.top_slices],
                              title=f"{result.study}: per-slice probabilities, head on the left")


def rule_text(result, k: int = TOP_K) -> str:
    n = len(result.liver_slices)
    return RULE_TEXT.get(result.rule, result.rule).format(n=n, k=min(k, n))


def bars_html(probabilities: dict, predicted: str) -> str:
    rows = []
    for name, p in sorted(probabilities.items(), key=lambda kv: -kv[1]):
        bold = "font-weight: bold;" if name == predicted else ""
        rows.append(f'<tr><td style="padding-right: 6px; {bold}">{html.escape(name)}</td>'
                    f'<td style="width: 160px"><div style="background: #4c72b0; height: 12px; width: {p * 100:.1f}%">'
                    f'</div></td><td class="liverlib-probability" style="padding-left: 6px">{p:.3f}</td></tr>')
    return f'<table style="font-size: 90%">{"".join(rows)}</table>'


def warnings_html(warnings) -> str:
    """A result's warnings as an HTML list ("" when there are none)."""
    items = "".join(f'<li style="color: #a15c00">{html.escape(w)}</li>' for w in warnings)
    return f"<ul>{items}</ul>" if items else ""


def study_html(result, k: int = TOP_K) -> str:
    """One study's answer as HTML (see the module doc)."""
    from liverlib.explain import overlay  # local: explain imports Keras

    series = f" (series {result.series})" if result.series else ""
    tops = []
    for t in result.top_slices:
        index = t["index"]
        grey = result.model_inputs.get(index)
        images = _png_uri(grey, 110) if grey is not None else ""
        if grey is not None and index in result.heatmaps:
            images += _png_uri(overlay(grey, result.heatmaps[index]), 110)
        p = t["probabilities"]
        best = max(p, key=p.get)
        tops.append(f'<div class="liverlib-top-slice" style="margin-right: 12px"><div>{images}</div>'
                    f'<div style="font-size: 85%">slice {index} at z {t["z_mm"]:g} mm: {html.escape(best)} '
                    f'{p[best]:.2f}</div></div>')
    return (f'<div class="liverlib-result liverlib-study" style="margin: 8px 0; padding: 6px; border: 1px solid #ddd">'
            f'<div><b>{html.escape(result.study)}</b>{series}: study of {result.n_slices} slices, predicted '
            f'<b class="liverlib-predicted">{html.escape(result.predicted_class)}</b> (probability '
            f'{result.probabilities[result.predicted_class]:.2f}; <span class="liverlib-rule">{result.rule}</span>: '
            f'{html.escape(rule_text(result, k))}; {result.seconds:.1f} s)</div>'
            f'<div style="display: flex; align-items: center">{bars_html(result.probabilities, result.predicted_class)}'
            f'</div>{_png_uri(strip_figure(result), css="liverlib-strip")}'
            f'<div style="font-size: 90%; margin-top: 4px">The most abnormal slices, as the model sees them, and '
            f'their Grad-CAM for the slice\'s predicted class (red: strongest evidence):</div>'
            f'<div style="display: flex; flex-wrap: wrap">{"".join(tops)}</div>'
            f'<div style="font-size: 85%; color: #555">Only the slices that show the liver are classified; a slice '
            f'model sees no 3-D context. For teaching only, not for diagnosis.</div>'
            f'{warnings_html(result.warnings)}</div>')
