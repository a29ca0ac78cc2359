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
from liverlib.imaging.windowing import WINDOWS, window_to_uint8


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
    from liverlib.imaging.dicom import write_ct_dicom

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


# ------------------------------------------------------------------------------------------- whole studies

@pytest.fixture(scope="module")
def study_uploads(tmp_path_factory):
    """One phantom patient's study (128 px, 10 mm slices) as a .nii.gz and as a zip of its DICOM series."""
    import zipfile

    from liverlib.phantom import write_phantom_studies

    root = tmp_path_factory.mktemp("study_uploads")
    kwargs = dict(n=1, size=128, classes=("malignant",), slice_spacing_mm=10.0, workers=1, progress=False)
    write_phantom_studies(root / "dicom", fmt="dicom-series", **kwargs)
    write_phantom_studies(root / "nifti", fmt="nifti", **kwargs)
    [series] = [p for p in (root / "dicom" / "malignant").iterdir() if p.is_dir()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(series.iterdir()):
            zf.write(path, f"export/series 1/{path.name}")
    [nifti] = (root / "nifti" / "malignant").glob("*.nii.gz")
    return {"nifti": nifti.read_bytes(), "zip": buf.getvalue(), "n_slices": len(list(series.iterdir()))}


def _study_page_checks(app, name, n_slices):
    page = app.results.value
    assert page.count('class="liverlib-result liverlib-study"') == 1 and name in page
    assert page.count('class="liverlib-probability"') == 4  # the study's probabilities
    assert page.count('class="liverlib-strip"') == 1  # the strip plot along z
    assert page.count('class="liverlib-top-slice"') == 3 and page.count("data:image/png;base64") == 1 + 3 * 2
    assert f"study of {n_slices} slices" in page and "liver slices" in page
    assert "liverlib-upload-" not in page and "/tmp" not in page  # the private temporary folder never shows
    assert "P00001" not in page  # the header's patient ID never shows
    assert "1 of 1 file(s) classified" in app.status.value and app.upload.value == ()


def test_a_nifti_study_shows_the_answer_the_strip_and_the_top_slices(tiny_run, study_uploads):
    from liverlib.study_classify import StudyResult

    app = ClassifyApp(tiny_run)
    _upload(app, [("patient.nii.gz", study_uploads["nifti"])])
    _study_page_checks(app, "patient.nii.gz", study_uploads["n_slices"])
    [result] = app.process([("patient.nii.gz", study_uploads["nifti"])])
    assert isinstance(result, StudyResult) and result.rule == "top-k" and result.study == "patient.nii.gz"
    assert f'<span class="liverlib-rule">top-k</span>' in app.results.value
    assert set(result.heatmaps) == {t["index"] for t in result.top_slices}


def test_a_zipped_dicom_series_gives_the_same_answer_and_the_rule_is_chosen(tiny_run, study_uploads):
    app = ClassifyApp(tiny_run, gradcam=False)
    [nifti] = app.process([("patient.nii.gz", study_uploads["nifti"])])
    app = ClassifyApp(tiny_run)
    _upload(app, [("series.zip", study_uploads["zip"])])
    _study_page_checks(app, "series.zip", study_uploads["n_slices"])
    app.rule.value = "noisy-or"
    [zipped] = app.process([("series.zip", study_uploads["zip"])])
    assert zipped.rule == "noisy-or" and "noisy-OR over" in app.results.value
    assert zipped.liver_slices == nifti.liver_slices
    app.rule.value = "top-k"
    [again] = app.process([("series.zip", study_uploads["zip"])])
    assert again.probabilities == pytest.approx(nifti.probabilities, abs=1e-6)  # same volume, same answer


def test_bad_studies_show_the_readers_message_and_slices_still_work(tiny_run, study_uploads, slice_png):
    import zipfile

    notes = io.BytesIO()
    with zipfile.ZipFile(notes, "w") as zf:
        zf.writestr("readme.txt", "no images in here")
    app = ClassifyApp(tiny_run)
    _upload(app, [("broken.zip", b"PK\x03\x04 not really a zip"), ("notes.zip", notes.getvalue()),
                  ("empty.nii.gz", b""), ("truncated.nii.gz", study_uploads["nifti"][:2000]),
                  ("slice.png", slice_png)])
    page = app.results.value
    assert page.count('class="liverlib-error"') == 4 and page.count('class="liverlib-result"') == 1
    assert "<b>broken.zip</b> could not be classified: broken.zip is not a readable zip archive" in page
    assert "<b>notes.zip</b> could not be classified" in page and "empty.nii.gz is empty" in page
    assert "truncated.nii.gz" in page and "Traceback" not in page
    assert "liverlib-upload-" not in page and "/tmp" not in page and "upload.zip" not in page
    assert "1 of 5 file(s) classified" in app.status.value


def test_an_upload_over_the_limit_is_refused_with_a_message(tiny_run, study_uploads, slice_png, monkeypatch):
    from liverlib.study_widget import MAX_UPLOAD_ENV, max_upload_bytes, transport_limit_bytes

    assert max_upload_bytes() >= 300 * 10**6  # a realistic zipped series (300 MB) fits by default
    assert transport_limit_bytes() > max_upload_bytes()  # the server lets a little more through, to say so
    monkeypatch.setenv(MAX_UPLOAD_ENV, "0.125")  # 128 KiB: the zipped series is larger
    app = ClassifyApp(tiny_run)
    assert app.max_upload == 131_072 and "liverlib-max-upload-131072" in app.widget._dom_classes
    assert len(study_uploads["zip"]) > app.max_upload
    _upload(app, [("series.zip", study_uploads["zip"])])
    assert "not uploaded" in app.status.value and "upload limit of 128 KB" in app.status.value
    assert "liverlib classify FILE" in app.status.value and "Traceback" not in app.status.value
    assert app.results.value == "" and app.upload.value == ()
    # the limit is on the whole upload: two slices together can exceed it too
    outcome = app.process([("a.png", slice_png)] * (app.max_upload // len(slice_png) + 1))
    assert len(outcome) == 1 and "files of" in outcome[0] and "together" in outcome[0]
    _upload(app, [("slice.png", slice_png)])  # under the limit: works as before
    assert app.results.value.count('class="liverlib-result"') == 1


def test_the_browser_guard_reads_the_apps_limit():
    from liverlib.study_widget import upload_guard_html

    script = upload_guard_html()
    assert script.startswith("<script>") and "liverlib-max-upload-" in script and "addEventListener" in script
    assert "liverlib-too-large" in script and "liverlib-status" in script


def test_liverlib_app_refuses_a_bad_upload_limit(capsys):
    from liverlib.cli import main

    assert main(["app", "--max-upload-mb", "0"]) == 1
    assert "--max-upload-mb must be a positive number" in capsys.readouterr().err
