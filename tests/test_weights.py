"""ImageNet weights: fetched once into the Keras cache, hash-checked, never half there; offline costs seconds.

Everything runs offline against a small HTTP server on 127.0.0.1 that serves a ResNet-50 (no top) weights
file written by the test, in the legacy h5 format of Keras' published file.
"""

import hashlib
import http.server
import socket
import threading
import time
import warnings

import numpy as np
import pytest

import liverlib  # noqa: F401  (TensorFlow settings before import)
import keras

from liverlib import weights
from liverlib.errors import LiverlibError
from liverlib.model import build_modified_resnet50
from liverlib.preprocess import NORMALISATION_MODES, normalise, normalise_tf, to_model_input
from liverlib.weights import IMAGENET_NOTOP_FILE, fetch_imagenet_weights, normalisation_for, obtain_imagenet_weights

CHECKED_LAYERS = ("conv1_conv", "conv3_block2_2_bn", "conv5_block3_3_conv")


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A ResNet-50 (no top, 32 px) weights file as Keras publishes its ImageNet one (legacy h5), with its
    bytes, md5 and some layers' weights."""
    import h5py
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    keras.utils.set_random_seed(7)
    source = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    rng = np.random.default_rng(7)
    for layer in source.layers:  # batch norms with non-trivial statistics, so equality means something
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in layer.get_weights()])
    path = tmp_path_factory.mktemp("published") / IMAGENET_NOTOP_FILE
    with h5py.File(path, "w") as f:
        save_weights_to_hdf5_group(f, source)
    data = path.read_bytes()
    expected = {name: source.get_layer(name).get_weights() for name in CHECKED_LAYERS}
    return {"path": path, "bytes": data, "md5": hashlib.md5(data).hexdigest(), "layers": expected}


def _corrupt(good: bytes) -> bytes:
    """The file with one byte changed in the middle."""
    corrupt = bytearray(good)
    corrupt[len(corrupt) // 2] ^= 0xFF
    return bytes(corrupt)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


@pytest.fixture(scope="module")
def server(weights_file):
    """http://127.0.0.1:<port>/good.h5, /corrupt.h5 (one byte changed), /truncated.h5 (half the promised
    body, then the connection closes), /missing.h5 (404); counts the requests."""
    good = weights_file["bytes"]
    bodies = {"/good.h5": good, "/corrupt.h5": _corrupt(good), "/truncated.h5": good}
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            requests.append(self.path)
            body = bodies.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if self.path == "/truncated.h5" else body)

        def log_message(self, *args):
            pass

    httpd = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{httpd.server_address[1]}", "requests": requests}
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch, weights_file):
    """A fresh Keras cache, the test file's hash expected, and no failures remembered from other tests."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv(weights.HASH_ENV, weights_file["md5"])
    monkeypatch.setenv(weights.URL_ENV, f"http://127.0.0.1:{_closed_port()}/{IMAGENET_NOTOP_FILE}")
    monkeypatch.setattr(weights, "_failures", {})
    monkeypatch.setattr(weights, "_reported", set())
    return tmp_path / "keras" / "models"


def _files(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_the_published_address_and_hash_are_the_installed_keras_ones():
    from keras.src.applications import resnet

    assert weights.KERAS_RESNET50_NOTOP_URL == resnet.BASE_WEIGHTS_PATH + IMAGENET_NOTOP_FILE
    assert weights.KERAS_RESNET50_NOTOP_MD5 == resnet.WEIGHTS_HASHES["resnet50"][1]


def test_settings_default_to_keras_published_file(monkeypatch, tmp_path):
    monkeypatch.delenv(weights.URL_ENV)
    monkeypatch.delenv(weights.HASH_ENV)
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert weights.weights_url() == weights.KERAS_RESNET50_NOTOP_URL
    assert weights.expected_weights_hash() == weights.KERAS_RESNET50_NOTOP_MD5
    assert weights.keras_cache_dir() == tmp_path / ".keras" / "models"
    monkeypatch.setenv(weights.HASH_ENV, "not-a-hash")
    with pytest.raises(LiverlibError, match="not an md5"):
        obtain_imagenet_weights()


def test_a_good_download_lands_in_the_cache_and_loads_into_the_model(server, cache, weights_file, monkeypatch,
                                                                      capsys):
    monkeypatch.setenv(weights.URL_ENV, server["url"] + "/good.h5")
    before = len(server["requests"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a good download warns about nothing
        model = build_modified_resnet50(4, 32, weights="imagenet")
    assert server["requests"][before:] == ["/good.h5"]
    assert _files(cache) == [IMAGENET_NOTOP_FILE]
    assert (cache / IMAGENET_NOTOP_FILE).read_bytes() == weights_file["bytes"]
    assert model.weights_source == f"imagenet (keras resnet50 notop, md5 {weights_file['md5']})"
    assert normalisation_for(model.weights_source) == "imagenet-caffe"
    for name, expected in weights_file["layers"].items():
        for ours, theirs in zip(model.get_layer(name).get_weights(), expected):
            np.testing.assert_array_equal(ours, theirs)
    assert "downloading the ImageNet weights" in capsys.readouterr().out


def test_a_cached_good_file_is_used_without_the_network(server, cache, weights_file, monkeypatch):
    cache.mkdir(parents=True)
    (cache / IMAGENET_NOTOP_FILE).write_bytes(weights_file["bytes"])
    monkeypatch.setenv(weights.URL_ENV, server["url"] + "/good.h5")
    before = len(server["requests"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fetched = obtain_imagenet_weights()
        assert fetch_imagenet_weights() == cache / IMAGENET_NOTOP_FILE
    assert fetched.origin == "cache" and fetched.path == cache / IMAGENET_NOTOP_FILE
    assert len(server["requests"]) == before  # no request at all


@pytest.mark.parametrize("route,says", [("/corrupt.h5", "failed its hash check"),
                                        ("/truncated.h5", "cut short"),
                                        ("/missing.h5", "HTTP 404")])
def test_a_bad_download_is_refused_and_leaves_nothing_in_the_cache(server, cache, weights_file, monkeypatch,
                                                                   route, says):
    monkeypatch.setenv(weights.URL_ENV, server["url"] + route)
    with pytest.warns(UserWarning) as record:
        assert fetch_imagenet_weights() is None
    assert len(record) == 1
    message = str(record[0].message)
    assert says in message and route in message and "starts from random initialisation" in message
    if route == "/corrupt.h5":  # names both hashes
        got = hashlib.md5(_corrupt(weights_file["bytes"])).hexdigest()
        assert f"md5 expected {weights_file['md5']}, got {got}" in message
    if route == "/truncated.h5":
        size = len(weights_file["bytes"])
        assert f"{size // 2:,} of {size:,} bytes" in message
    assert _files(cache) == []  # no partial, corrupt or temporary file


def test_a_corrupt_cached_copy_is_replaced_by_a_verified_download(server, cache, weights_file, monkeypatch):
    cache.mkdir(parents=True)
    (cache / IMAGENET_NOTOP_FILE).write_bytes(weights_file["bytes"][:1000])
    monkeypatch.setenv(weights.URL_ENV, server["url"] + "/good.h5")
    with pytest.warns(UserWarning, match="was corrupt .* was removed; a verified copy was downloaded"):
        assert fetch_imagenet_weights() == cache / IMAGENET_NOTOP_FILE
    assert (cache / IMAGENET_NOTOP_FILE).read_bytes() == weights_file["bytes"]
    assert _files(cache) == [IMAGENET_NOTOP_FILE]


def test_a_corrupt_cached_copy_is_removed_and_reported_when_offline(cache, weights_file):
    cache.mkdir(parents=True)
    (cache / IMAGENET_NOTOP_FILE).write_bytes(b"junk")
    with pytest.warns(UserWarning) as record:
        assert fetch_imagenet_weights() is None
    assert len(record) == 1
    message = str(record[0].message)
    assert f"expected {weights_file['md5']}, got {hashlib.md5(b'junk').hexdigest()}" in message
    assert "could not download" in message and "random initialisation" in message
    assert _files(cache) == []


def test_an_unreachable_server_falls_back_to_random_initialisation_within_seconds(cache):
    start = time.perf_counter()
    with pytest.warns(UserWarning) as record:
        assert fetch_imagenet_weights() is None
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"the offline fallback took {elapsed:.1f} s"
    assert len(record) == 1
    message = str(record[0].message)
    assert message.startswith("ImageNet weights unavailable: could not download http://127.0.0.1:")
    assert "Connection refused" in message and "starts from random initialisation" in message
    # the model says so, and neither retries the network nor repeats the message in this process
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        start = time.perf_counter()
        fetched = obtain_imagenet_weights()
        assert time.perf_counter() - start < 0.5 and fetched.path is None
        model = build_modified_resnet50(4, 32, weights="imagenet")
    assert model.weights_source.startswith("random initialisation (ImageNet weights unavailable: could not download")
    assert normalisation_for(model.weights_source) == "unit"
    assert _files(cache) == []


def test_a_server_that_never_answers_costs_only_the_timeout(monkeypatch, cache):
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        monkeypatch.setenv(weights.URL_ENV, f"http://127.0.0.1:{silent.getsockname()[1]}/w.h5")
        start = time.perf_counter()
        with pytest.warns(UserWarning, match="random initialisation"):
            assert fetch_imagenet_weights(timeout_s=1.0) is None
        elapsed = time.perf_counter() - start
    assert 0.9 < elapsed < 3.0, elapsed
    assert _files(cache) == []


def test_normalisation_for_weights_sources():
    assert normalisation_for("imagenet (keras resnet50 notop, md5 4d473c1dd8becc155b73f8504c6f6626)") == \
        "imagenet-caffe"
    assert normalisation_for("random initialisation") == "unit"
    assert normalisation_for("random initialisation (ImageNet weights unavailable: offline)") == "unit"
    assert normalisation_for("my_resnet.weights.h5 (106 layers)") == "unit"
    assert normalisation_for(None) == "unit"
    assert set(NORMALISATION_MODES) == {"unit", "imagenet-caffe"}


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_normalise_matches_keras_preprocess_input(dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 9, 7, 3)).astype(dtype)
    if dtype == "float32":
        x += rng.uniform(0, 0.99, x.shape).astype(dtype)
    reference = keras.applications.resnet50.preprocess_input(x.copy())
    ours = normalise(x, "imagenet-caffe")
    assert ours.dtype == np.float32 and ours.shape == x.shape
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(normalise_tf(x, "imagenet-caffe")), reference, rtol=0, atol=1e-5)
    assert abs(ours[0, 0, 0, 0] - (float(x[0, 0, 0, 2]) - 103.939)) < 1e-4  # BGR: blue mean from the R channel
    np.testing.assert_allclose(normalise(x, "unit"), x.astype(np.float32) / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_allclose(np.asarray(normalise_tf(x, "unit")), normalise(x, "unit"), rtol=0, atol=1e-7)


def test_unit_normalisation_is_the_course_preprocessing():
    grey = np.random.default_rng(1).integers(0, 256, (8, 8)).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    np.testing.assert_array_equal(normalise(rgb, "unit"), to_model_input(grey))


def test_normalise_refuses_unknown_modes_and_channel_counts():
    with pytest.raises(LiverlibError, match="unknown input normalisation"):
        normalise(np.zeros((2, 2, 3)), "imagenet")
    with pytest.raises(LiverlibError, match="needs 3 channels"):
        normalise(np.zeros((2, 2, 1)), "imagenet-caffe")
    with pytest.raises(LiverlibError, match="needs 3 channels"):
        normalise_tf(np.zeros((2, 2, 1)), "imagenet-caffe")


def test_the_quick_profiles_resnet14_refuses_pretrained_weights_before_any_download(monkeypatch):
    from liverlib.config import load_config
    from liverlib.train import resolve_weights

    def no_download():
        raise AssertionError("the weights were fetched for a model that cannot take them")

    monkeypatch.setattr(weights, "fetch_imagenet_weights", no_download)
    with pytest.raises(LiverlibError, match="fit ResNet-50.*--profile laptop"):
        resolve_weights(load_config("quick"), "imagenet")
    with pytest.raises(LiverlibError, match="fit ResNet-50"):
        resolve_weights(load_config("quick"), "/some/resnet50_notop.h5")
    assert resolve_weights(load_config("quick")).weights is None  # no weights asked: random initialisation


def test_a_refused_download_leaves_no_open_socket(server, monkeypatch):
    """An HTTP error answer (404) holds the open response: it is closed, not left to the garbage collector
    (whose ResourceWarning would land in whichever test runs then)."""
    import gc

    monkeypatch.setenv(weights.URL_ENV, server["url"] + "/missing.h5")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert fetch_imagenet_weights() is None
        gc.collect()
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaked, leaked
    assert any("HTTP 404" in str(w.message) for w in caught)
