"""The web app (`make app`: Voila serving liverlib/app.ipynb) used in a real browser.

Starts `liverlib app` on a free port with a run folder and a small upload limit, opens it in headless
Chromium, uploads a phantom PNG, a phantom DICOM, a bad file, a zipped phantom DICOM series (a whole study)
and a file over the limit through the real file chooser, and checks what a person would see. Requests that
leave 127.0.0.1 (Voila asks a CDN for icon fonts) are blocked; the app must work without them.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from PIL import Image

from liverlib.imaging.dicom import write_ct_dicom
from liverlib.phantom import make_slice
from liverlib.imaging.windowing import window_to_uint8
from liverlib.kernels import encryption_available

pytestmark = pytest.mark.browser
CLASSES = ("benign", "cirrhosis", "malignant", "normal")
UPLOAD_LIMIT_MB = 2  # the app's limit in this test: the study's zip fits, a 3 MB file does not


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app(tiny_run, tmp_path_factory):
    """The app's address and its server's log."""
    port = _free_port()
    log = tmp_path_factory.mktemp("app") / "voila.log"
    env = {**os.environ, "LIVERLIB_MODEL": str(tiny_run)}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "liverlib", "app", "--port", str(port),
                                 "--max-upload-mb", str(UPLOAD_LIMIT_MB)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the app exited with status {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(1)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the app did not answer on {url} within 120 s:\n{log.read_text()[-3000:]}")
    yield url, log
    os.killpg(proc.pid, signal.SIGTERM)  # Voila and the kernels it started
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    png = folder / "phantom_benign.png"
    Image.fromarray(window_to_uint8(make_slice("benign", seed=2, size=256).hu, 40, 400)).save(png)
    dcm = folder / "phantom_malignant.dcm"
    write_ct_dicom(dcm, make_slice("malignant", seed=4, size=256).hu, pixel_spacing_mm=1.56, patient_id="PHANTOM",
                   slice_index=0, z_mm=0, slice_thickness_mm=5, window=(40, 400), uid_seed="app-test")
    bad = folder / "holiday_notes.png"
    bad.write_text("not an image at all")
    return png, dcm, bad


@pytest.fixture(scope="module")
def study_files(tmp_path_factory):
    """A phantom patient's DICOM series (128 px, 10 mm slices) zipped, and a file over the upload limit."""
    import zipfile

    from liverlib.phantom import write_phantom_studies

    folder = tmp_path_factory.mktemp("study_uploads")
    write_phantom_studies(folder / "series", n=1, size=128, classes=("malignant",), slice_spacing_mm=10.0,
                          workers=1, progress=False)
    [series] = [p for p in (folder / "series" / "malignant").iterdir() if p.is_dir()]
    study = folder / "abdomen_series.zip"
    with zipfile.ZipFile(study, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(series.iterdir()):
            zf.write(path, f"series/{path.name}")
    big = folder / "too_big.zip"
    big.write_bytes(os.urandom((UPLOAD_LIMIT_MB + 1) * 2**20))
    assert study.stat().st_size < UPLOAD_LIMIT_MB * 2**20
    return study, big


def _upload(page, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Upload slices or a study").click()
    chooser.value.set_files(str(path))


def test_upload_classify_and_survive_a_bad_file(app, files, study_files, browser):
    app_url, log = app
    png, dcm, bad = files
    study, big = study_files
    page = browser.new_page()
    problems: list[str] = []

    def route(r):
        if urlparse(r.request.url).hostname in ("127.0.0.1", None) or r.request.url.startswith("data:"):
            r.continue_()
        else:
            r.abort()  # offline: the CDN icon font is not needed

    page.route("**/*", route)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(app_url, wait_until="load", timeout=120_000)  # Voila sends the page as the kernel runs the app
    page.get_by_role("button", name="Upload slices or a study").wait_for(timeout=120_000)  # the kernel ran the notebook
    assert "not for diagnosis" in page.inner_text("body")
    assert "Traceback" not in page.inner_text("body")
    if encryption_available():  # the page's kernel runs over encrypted sockets (liverlib.kernels), so says nothing
        assert "Kernel started" in log.read_text() and "without encryption" not in log.read_text(), log.read_text()

    for path in (png, dcm):
        _upload(page, path)
        result = page.locator(".liverlib-result", has_text=path.name)
        result.wait_for(timeout=60_000)
        predicted = result.locator(".liverlib-predicted").inner_text()
        assert predicted in CLASSES
        probabilities = [float(t) for t in result.locator(".liverlib-probability").all_inner_texts()]
        assert len(probabilities) == 4 and abs(sum(probabilities) - 1) < 0.01

    _upload(page, bad)
    error = page.locator(".liverlib-error", has_text=bad.name)
    error.wait_for(timeout=60_000)
    assert "not an image" in error.inner_text()
    assert "Traceback" not in page.inner_text("body")

    _upload(page, png)  # the app keeps working after the error
    page.locator(".liverlib-result", has_text=png.name).wait_for(timeout=60_000)
    assert page.locator(".liverlib-error").count() == 0

    # a whole study: the zipped series gets one answer, the strip plot along z and the top slices
    _upload(page, study)
    answer = page.locator(".liverlib-study", has_text=study.name)
    answer.wait_for(timeout=120_000)
    assert answer.locator(".liverlib-predicted").inner_text() in CLASSES
    probabilities = [float(t) for t in answer.locator(".liverlib-probability").all_inner_texts()]
    assert len(probabilities) == 4 and abs(sum(probabilities) - 1) < 0.01
    assert answer.locator(".liverlib-rule").inner_text() == "top-k" and "liver slices" in answer.inner_text()
    strip = answer.locator("img.liverlib-strip")
    assert strip.is_visible() and strip.evaluate("img => img.naturalWidth") > 200  # the plot was drawn
    assert answer.locator(".liverlib-top-slice").count() == 3
    assert "PHANTOM" not in answer.inner_text() and "P00001" not in answer.inner_text()

    # over the app's limit: refused in the browser before it is sent, with a message; the app goes on
    _upload(page, big)
    refused = page.locator(".liverlib-too-large", has_text=big.name)
    refused.wait_for(timeout=30_000)
    assert "upload limit of 2 MB" in refused.inner_text() and "liverlib classify" in refused.inner_text()
    _upload(page, png)
    page.locator(".liverlib-result", has_text=png.name).wait_for(timeout=60_000)
    assert "Traceback" not in page.inner_text("body")
    assert not problems, problems
