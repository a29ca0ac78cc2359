"""The upload widget's callback, driven as the upload button drives it."""

import datetime
import io
import json
import shutil

import pytest
from PIL import Image

from liverlib.classify import Classification
from liverlib.phantom import make_slice
from liverlib.widget import ClassifyApp, find_run
from liverlib.windowing import WINDOWS, window_to_uint8


def _png(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def slice_png():
    return _png(window_to_uint8(make_slice("benign", seed=5, size=128).hu, 40, 400))


def _upload(app, files):
    """What the browser sends: FileUpload.value set to one dict per file."""
    app.upload.value = tuple({"name": name, "type": "", "size": len(data), "last_modified": datetime.datetime.now(datetime.timezone.utc),
                              "content": memoryview(data)} for name, data in files)


def test_an_upload_shows_the_prediction_probabilities_and_gradcam(tiny_run, slice_png):
    app = ClassifyApp(tiny_run)
    assert "not for diagnosis" in app.notice.value and "synthetic" in app.notice.value
    _upload(app, [("slice.png", slice_png)])
    page = app.results.value
    assert page.count('class="liverlib-result"') == 1
    assert "predicted" in page and page.count("data:image/png;base64") == 2  # slice and Grad-CAM overlay
    assert page.count('class="liverlib-probability"') == 4
    assert "1 of 1 file(s) classified" in app.status.value
    assert app.upload.value == ()  # cleared, so the same file can be uploaded again


def test_a_bad_file_shows_an_error_and_the_next_upload_works(tiny_run, slice_png):
    app = ClassifyApp(tiny_run)
    _upload(app, [("notes.png", b"not an image"), ("good.png", slice_png), ("../../x\x00.png", b"")])
    page = app.results.value
    assert page.count('class="liverlib-error"') == 2 and page.count('class="liverlib-result"') == 1
    assert "not an image PIL can read" in page and "is empty" in page and "Traceback" not in page
    assert "x?.png" in page and "../" not in page
    _upload(app, [("again.png", slice_png)])
    assert app.results.value.count('class="liverlib-result"') == 1 and "liverlib-error" not in app.results.value


def test_process_returns_results_and_messages(tiny_run, slice_png):
    outcomes = ClassifyApp(tiny_run, gradcam=False).process([("a.png", slice_png), ("b.png", b"")])
    assert isinstance(outcomes[0], Classification) and outcomes[0].heatmap is None
    assert isinstance(outcomes[1], str) and "empty" in outcomes[1]


def test_the_dicom_window_selector_reaches_the_classifier(tiny_run, tmp_path):
    from liverlib.dicom import write_ct_dicom

    path = tmp_path / "s.dcm"
    write_ct_dicom(path, make_slice("normal", seed=1, size=96).hu, pixel_spacing_mm=0.8, patient_id="T",
                   slice_index=0, z_mm=0, slice_thickness_mm=5, window=(40, 400), uid_seed="w")
    app = ClassifyApp(tiny_run)
    app.window.value = "liver"
    [result] = app.process([("s.dcm", path.read_bytes())])
    assert result.source["window"] == list(WINDOWS["liver"]) and any("differs" in w for w in result.warnings)


def test_without_a_model_the_app_says_what_to_do(tmp_path, monkeypatch, slice_png):
    app = ClassifyApp(None)
    assert "no trained model" in app.status.value and app.upload.disabled
    assert ClassifyApp(tmp_path).classifier is None  # a folder that is not a run
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.keras").write_bytes(b"garbage")
    (broken / "model_card.json").write_text(json.dumps({"class_names": ["a", "b"], "input_size": 64,
                                                         "window": {"level": 40, "width": 400}}))
    app = ClassifyApp(broken)
    assert "could not be loaded" in app.status.value


def test_find_run_prefers_the_environment_then_the_newest_run(tmp_path, monkeypatch, tiny_run):
    from liverlib.config import load_config

    config = load_config("quick", artifacts_dir=tmp_path)
    assert find_run(config) is None
    shutil.copytree(tiny_run, tmp_path / "runs" / "quick-abc-seed42")
    assert find_run(config) == tmp_path / "runs" / "quick-abc-seed42"
    monkeypatch.setenv("LIVERLIB_MODEL", str(tiny_run))
    assert find_run(config) == tiny_run
