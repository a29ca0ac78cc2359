"""ImageNet weights for the backbone: Keras' published ResNet-50 (no top) file, fetched once and verified.

:func:`fetch_imagenet_weights` returns the path of
``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`` in the Keras cache (``$KERAS_HOME/models``, by
default ``~/.keras/models``), the file ``keras.applications.ResNet50(weights="imagenet")`` uses:

- a cached copy is used when its hash is the published one (no network);
- otherwise the file is downloaded from Keras' published address, streamed to a temporary file in the
  cache folder, checked against the published hash, and only then renamed into place (an atomic rename:
  the cache never holds a partial or corrupt file; a corrupt cached copy is removed and fetched again);
- when the download is impossible (offline, a firewall, a truncated or corrupt file) it returns None with
  one message that says what happened and that training starts from random initialisation.

Connecting gets ``timeout_s`` (5 s by default; name resolution included), so a machine without the
internet loses seconds, not minutes, and a failure is remembered for the rest of the process (a Hyperband
search builds one model per trial). Settings, for mirrors and tests:

- ``LIVERLIB_WEIGHTS_URL``: where to download the file from (default: Keras' published address);
- ``LIVERLIB_WEIGHTS_HASH``: the file's expected md5 (32 hex digits) or sha256 (64); default: the hash
  Keras publishes, so a mirror of the same file needs only the URL;
- ``KERAS_HOME``: the Keras folder whose ``models/`` sub-folder is the cache (default ``~/.keras``).

The weights need the input normalisation they were trained with: :func:`normalisation_for` names it
(``"imagenet-caffe"`` for these weights, ``"unit"`` for random initialisation), and
:func:`liverlib.preprocess.normalise` applies it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import queue
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from liverlib.errors import LiverlibError

IMAGENET_NOTOP_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
# keras/src/applications/resnet.py: BASE_WEIGHTS_PATH + the file name, and WEIGHTS_HASHES["resnet50"][1]
# (a test checks these against the installed Keras)
KERAS_BASE_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
KERAS_RESNET50_NOTOP_URL = KERAS_BASE_WEIGHTS_URL + IMAGENET_NOTOP_FILE
KERAS_RESNET50_NOTOP_MD5 = "4d473c1dd8becc155b73f8504c6f6626"
URL_ENV = "LIVERLIB_WEIGHTS_URL"
HASH_ENV = "LIVERLIB_WEIGHTS_HASH"
DEFAULT_TIMEOUT_S = 5.0
STALL_TIMEOUT_S = 60.0  # a download that receives nothing for this long is abandoned
_CHUNK = 1 << 20

IMAGENET_SOURCE_PREFIX = "imagenet (keras resnet50 notop"
RANDOM_SOURCE_PREFIX = "random initialisation"

# failures already reported in this process: (url, hash, cache folder) -> reason
_failures: dict[tuple[str, str, str], str] = {}
# cached files already hashed in this process: (path, size, mtime, algorithm) -> hash
_checked: dict[tuple[str, int, int, str], str] = {}


@dataclass(frozen=True)
class WeightsFetch:
    """What :func:`obtain_imagenet_weights` found: the file (or None), its hash, and why there is none."""

    path: Path | None
    algorithm: str  # "md5" or "sha256"
    expected_hash: str
    origin: str  # "cache", "download" or "" (none)
    reason: str = ""  # why there is no file; empty when there is one
    note: str = ""  # something the user should know even on success (a corrupt cached copy replaced)

    @property
    def weights_source(self) -> str:
        """The model's ``weights_source``: exactly which weights the backbone starts from."""
        if self.path is None:
            return f"{RANDOM_SOURCE_PREFIX} (ImageNet weights unavailable: {self.reason})"
        return f"{IMAGENET_SOURCE_PREFIX}, {self.algorithm} {self.expected_hash})"


def normalisation_for(weights_source: str | None) -> str:
    """The input normalisation (a mode of :func:`liverlib.preprocess.normalise`) a model's weights need.

    ``"imagenet-caffe"`` for Keras' ImageNet weights (``weights_source`` starting with "imagenet"): they were
    trained on inputs prepared by ``keras.applications.resnet50.preprocess_input`` (0-255 RGB -> BGR, minus
    the ImageNet channel means). ``"unit"`` (x / 255, the course's preprocessing) for everything else:
    random initialisation, and a weights file that is not Keras' published ImageNet file, which is taken to
    come from a model trained with this course's preprocessing.
    """
    return "imagenet-caffe" if (weights_source or "").startswith("imagenet") else "unit"


def keras_cache_dir() -> Path:
    """The folder Keras keeps downloaded weights in: ``$KERAS_HOME/models`` (default ``~/.keras/models``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def hash_algorithm(expected_hash: str) -> str:
    """"md5" or "sha256", from the length of a hexadecimal hash (as Keras' ``get_file`` does)."""
    value = expected_hash.strip().lower()
    if len(value) in (32, 64) and all(c in "0123456789abcdef" for c in value):
        return "md5" if len(value) == 32 else "sha256"
    raise LiverlibError(f"{expected_hash!r} is not an md5 (32 hexadecimal digits) or sha256 (64) hash; check "
                        f"{HASH_ENV}")


def file_hash(path: str | os.PathLike, algorithm: str) -> str:
    """The hexadecimal md5 or sha256 of a file, read in 1 MiB chunks."""
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def weights_url() -> str:
    """Where the file is downloaded from: ``$LIVERLIB_WEIGHTS_URL`` or Keras' published address."""
    return os.environ.get(URL_ENV) or KERAS_RESNET50_NOTOP_URL


def expected_weights_hash() -> str:
    """The hash the file must have: ``$LIVERLIB_WEIGHTS_HASH`` or the md5 Keras publishes."""
    return (os.environ.get(HASH_ENV) or KERAS_RESNET50_NOTOP_MD5).strip().lower()


def _open_url(url: str, timeout_s: float):
    """``urlopen`` with the whole of connecting (name resolution included) bounded by ``timeout_s``.

    The socket timeout does not cover name resolution, which can hang for tens of seconds on a machine
    whose DNS server is unreachable, so the opening runs in a daemon thread that is abandoned when late.
    """
    answers: queue.Queue = queue.Queue(maxsize=1)
    abandoned = threading.Event()

    def opener():
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "liverlib"})
            answer = urllib.request.urlopen(request, timeout=timeout_s)
        except BaseException as exc:  # noqa: BLE001  (handed to the waiting thread)
            answer = exc
        if abandoned.is_set():
            _close_answer(answer)
        else:
            answers.put(answer)

    threading.Thread(target=opener, name="liverlib-weights-open", daemon=True).start()
    try:
        answer = answers.get(timeout=timeout_s + 0.5)
    except queue.Empty:
        abandoned.set()
        try:  # the opener may have finished just now
            _close_answer(answers.get_nowait())
        except queue.Empty:
            pass
        raise TimeoutError(f"no answer within {timeout_s:g} s") from None
    if isinstance(answer, BaseException):
        raise answer
    return answer


def _close_answer(answer) -> None:
    """Close what urlopen gave: a response, or an HTTP error answer, which holds the open response and with it
    the socket (left to the garbage collector, its ResourceWarning lands wherever the program is then)."""
    if not isinstance(answer, BaseException) or isinstance(answer, urllib.error.HTTPError):
        answer.close()


def _describe_error(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # URLError wraps the socket error
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if reason is not None:
        return str(reason) if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _download(url: str, folder: Path, algorithm: str, timeout_s: float, announce: bool) -> tuple[Path, str, int]:
    """Stream ``url`` into a temporary file in ``folder``; return it, its hash and its size.

    Raises ``OSError``/``TimeoutError`` (network), or ``ValueError`` for a truncated body; the temporary
    file is removed whenever this raises.
    """
    response = _open_url(url, timeout_s)
    with response:
        try:  # after connecting, reads may pause longer than the connect timeout (a slow line), not forever
            response.fp.raw._sock.settimeout(max(STALL_TIMEOUT_S, timeout_s))
        except AttributeError:
            pass
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if announce:
            size = f" ({length / 1e6:.1f} MB)" if length else ""
            print(f"downloading the ImageNet weights of ResNet-50{size} from {url} ...", flush=True)
        hasher = hashlib.new(algorithm)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{IMAGENET_NOTOP_FILE}.", suffix=".part", dir=folder)
        tmp = Path(tmp_name)
        received = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except http.client.IncompleteRead as exc:  # the answer promised more
                        expected = f"{length:,}" if length is not None else "more"
                        raise ValueError(f"the download was cut short: {received + len(exc.partial):,} of "
                                         f"{expected} bytes arrived") from None
                    if not chunk:
                        break
                    out.write(chunk)
                    hasher.update(chunk)
                    received += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if length is not None and received != length:
                raise ValueError(f"the download was cut short: {received:,} of {length:,} bytes arrived")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return tmp, hasher.hexdigest(), received


def obtain_imagenet_weights(timeout_s: float = DEFAULT_TIMEOUT_S, *, announce: bool = True) -> WeightsFetch:
    """The cached or freshly downloaded, hash-checked weights file; never raises for network problems.

    Returns a :class:`WeightsFetch` whose ``path`` is None (and ``reason`` says why) when the file cannot be
    had; reports nothing itself (see :func:`fetch_imagenet_weights`).
    """
    url, expected = weights_url(), expected_weights_hash()
    algorithm = hash_algorithm(expected)
    folder = keras_cache_dir()
    target = folder / IMAGENET_NOTOP_FILE
    key = (url, expected, str(folder))

    def result(path=None, origin="", reason="", note=""):
        return WeightsFetch(path, algorithm, expected, origin, reason, note)

    note = ""
    if target.is_file():
        stat = target.stat()
        checked = (str(target), stat.st_size, stat.st_mtime_ns, algorithm)
        got = _checked.get(checked) or file_hash(target, algorithm)
        if got == expected:
            _checked[checked] = got  # hashed once per process (a Hyperband search builds many models)
            return result(target, "cache")
        try:
            target.unlink()
            note = (f"the cached copy {target} was corrupt ({algorithm} expected {expected}, got {got}) and "
                    "was removed")
        except OSError as exc:
            return result(reason=f"the cached copy {target} is corrupt ({algorithm} expected {expected}, got "
                                 f"{got}) and could not be removed ({exc}); delete it")
    if key in _failures:  # already tried, and reported, in this process
        return result(reason=_failures[key], note=note)

    def failed(reason: str) -> WeightsFetch:
        reason = f"{note}; {reason}" if note else reason
        _failures[key] = reason
        return result(reason=reason)

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return failed(f"the Keras cache folder {folder} cannot be created ({exc}); set KERAS_HOME to a "
                      "writable folder")
    start = time.perf_counter()
    try:
        tmp, got, size = _download(url, folder, algorithm, timeout_s, announce)
    except ValueError as exc:  # truncated
        return failed(f"{exc} from {url}")
    except (OSError, http.client.HTTPException) as exc:  # offline, refused, timed out, a broken answer
        _close_answer(exc)
        return failed(f"could not download {url} ({_describe_error(exc)}, after "
                      f"{time.perf_counter() - start:.1f} s)")
    if got != expected:
        tmp.unlink(missing_ok=True)
        return failed(f"the file downloaded from {url} failed its hash check ({algorithm} expected {expected}, "
                      f"got {got}; {size:,} bytes) and was discarded")
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)  # atomic: the cache holds either no file or the whole, verified one
    _failures.pop(key, None)
    if announce:
        print(f"ImageNet weights saved to {target} ({size / 1e6:.1f} MB, {algorithm} verified)", flush=True)
    return result(target, "download", note=note)


def unavailable_message(fetch: WeightsFetch) -> str:
    """The one message for a fallback to random initialisation."""
    return (f"ImageNet weights unavailable: {fetch.reason}. Training starts from random initialisation "
            f"(to use ImageNet weights, put {IMAGENET_NOTOP_FILE} in {keras_cache_dir()}, or run once with "
            "the internet)")


def fetch_imagenet_weights(timeout_s: float = DEFAULT_TIMEOUT_S) -> Path | None:
    """The path of Keras' ResNet-50 no-top ImageNet weights, from the cache or downloaded and verified.

    None when they cannot be had, with one warning that says what happened and that training starts from
    random initialisation (once per process for the same cause).
    """
    fetch = obtain_imagenet_weights(timeout_s)
    report(fetch)
    return fetch.path


_reported: set[str] = set()


def report(fetch: WeightsFetch) -> None:
    """Warn once about a fallback to random initialisation (and about a replaced corrupt cached copy)."""
    if fetch.path is None:
        if fetch.reason not in _reported:
            _reported.add(fetch.reason)
            warnings.warn(unavailable_message(fetch), UserWarning, stacklevel=3)
    elif fetch.note:
        warnings.warn(f"{fetch.note}; a verified copy was downloaded in its place", UserWarning, stacklevel=3)
