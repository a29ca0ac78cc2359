"""Manual check: a realistic whole study (a zipped thin-slice DICOM series of about 300 MB) goes through the
web app's server to the study answer, and a file over the app's limit is refused in the browser with a
message. Not part of `make test` (minutes of CPU and about 4 GB of memory); run it after changing the app's
upload path:

    .venv/bin/python scripts/check_large_upload.py [--model RUN] [--slices 600] [--keep DIR]

It writes a phantom series at 512 px (600 slices, stored uncompressed: about 315 MB) and serves `liverlib app`
with the default limit. The series is sent the way the upload button sends it, as one websocket message to
the kernel (a FileUpload state update holding the file), but from Python, in one frame as Firefox sends it
(Chromium fragments large messages): Playwright cannot carry it, its driver copies every websocket frame
the page sends and runs out of memory. The script waits for the study's answer to reach the page's results.
Then headless Chromium selects a file just over the limit through the real file chooser, and the refusal
is checked. Prints sizes and times; exits non-zero if a check fails. Without --model it uses an untrained
64 px model, enough for the path (the answer is meaningless).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path


def untrained_run(folder: Path) -> Path:
    import keras

    from liverlib.config import CLASS_NAMES
    from liverlib.model import build_modified_resnet50
    from liverlib.runs import CARD_FILE, MODEL_FILE

    keras.utils.set_random_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    build_modified_resnet50(len(CLASS_NAMES), 64).save(folder / MODEL_FILE)
    (folder / CARD_FILE).write_text(json.dumps({"class_names": list(CLASS_NAMES), "input_size": 64,
                                                "window": {"level": 40.0, "width": 400.0}, "profile": "check",
                                                "seed": 0, "synthetic_data": True, "metrics": {}}))
    return folder


def large_series_zip(path: Path, n_slices: int) -> Path:
    """A phantom patient rendered at a third of ``n_slices``, each slice repeated three times (a thin-slice
    series of the same anatomy: the phantom's planner stops at 0.5 mm), written as DICOM, zipped uncompressed."""
    from dataclasses import replace

    import numpy as np

    from liverlib.phantom.studies import make_study, write_study_dicom

    factor = 3
    study = make_study("malignant", seed=(77, 1), size=512, n_slices=-(-n_slices // factor))
    spacing = study.slice_spacing_mm / factor
    thin = replace(study, hu=np.repeat(study.hu, factor, axis=0), labels=np.repeat(study.labels, factor, axis=0),
                   z_mm=study.z_mm[0] + spacing * np.arange(len(study.z_mm) * factor), slice_spacing_mm=spacing)
    del study
    with tempfile.TemporaryDirectory() as tmp:
        write_study_dicom(thin, Path(tmp) / "series", "check/large-upload")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
            for member in sorted((Path(tmp) / "series").iterdir()):
                zf.write(member, f"series/{member.name}")
    return path


def _message(msg_type: str, content: dict, channel: str = "shell", session: str = "check") -> dict:
    import datetime
    import uuid

    return {"header": {"msg_id": uuid.uuid4().hex, "username": "check", "session": session, "msg_type": msg_type,
                       "version": "5.3", "date": datetime.datetime.now(datetime.timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "content": content, "channel": channel, "buffers": []}


def _binary(msg: dict, buffers: list[bytes]) -> bytes:
    """Jupyter's websocket message with binary buffers: count, offsets (big-endian uint32), JSON, buffers."""
    import struct

    parts = [json.dumps(msg).encode()] + buffers
    offsets, position = [], 4 * (len(parts) + 1)
    for part in parts:
        offsets.append(position)
        position += len(part)
    return struct.pack(f"!I{len(parts)}I", len(parts), *offsets) + b"".join(parts)


def _parse(frame) -> dict:
    import struct

    if isinstance(frame, str):
        return json.loads(frame)
    n = struct.unpack("!I", frame[:4])[0]
    offsets = list(struct.unpack(f"!{n}I", frame[4:4 * (n + 1)])) + [len(frame)]
    return json.loads(frame[offsets[0]:offsets[1]])


async def upload_over_websocket(url: str, name: str, data: bytes, timeout: float = 1800) -> tuple[str, float]:
    """Open the app's page (Voila runs the app in a kernel), find its FileUpload widget over the kernel's
    websocket and set its value to one file, as the browser does; return the results HTML and the seconds
    from sending to the answer."""
    import uuid

    import tornado.websocket

    page = urllib.request.urlopen(url, timeout=600).read().decode()
    kernel = re.search(r'"kernelId": "([0-9a-f-]+)"', page).group(1)
    ws = await tornado.websocket.websocket_connect(
        f"{url.replace('http', 'ws', 1)}api/kernels/{kernel}/channels?session_id={uuid.uuid4()}",
        max_message_size=2**31)
    await ws.write_message(json.dumps(_message("comm_info_request", {"target_name": "jupyter.widget"})))
    comms = {}
    while not comms:
        msg = _parse(await ws.read_message())
        if msg["header"]["msg_type"] == "comm_info_reply":
            comms = msg["content"]["comms"]
    for comm_id in comms:
        await ws.write_message(json.dumps(_message("comm_msg", {"comm_id": comm_id,
                                                                "data": {"method": "request_state"}})))
    models: dict[str, dict] = {}
    while len(models) < len(comms):
        msg = _parse(await ws.read_message())
        if msg["header"]["msg_type"] == "comm_msg" and msg["content"]["data"].get("method") == "update":
            models[msg["content"]["comm_id"]] = msg["content"]["data"]["state"]
    [upload] = [c for c, state in models.items() if state.get("_model_name") == "FileUploadModel"]
    results = {c for c, state in models.items() if state.get("_model_name") == "HTMLModel"}
    value = [{"name": name, "type": "application/zip", "size": len(data), "content": None,
              "last_modified": int(time.time() * 1000)}]
    update = _message("comm_msg", {"comm_id": upload, "data": {"method": "update", "state": {"value": value},
                                                               "buffer_paths": [["value", 0, "content"]]}})
    start = time.perf_counter()
    await ws.write_message(_binary(update, [data]), binary=True)  # one frame, as Firefox sends it
    deadline = time.time() + timeout
    while time.time() < deadline:
        frame = await asyncio.wait_for(ws.read_message(), timeout=deadline - time.time())
        if frame is None:
            raise RuntimeError("the server closed the kernel's websocket")
        msg = _parse(frame)
        content = msg.get("content", {})
        if msg["header"]["msg_type"] == "comm_msg" and content.get("comm_id") in results:
            html = content["data"].get("state", {}).get("value", "")
            if "liverlib-result" in html or "liverlib-error" in html:
                ws.close()
                return html, time.perf_counter() - start
    raise TimeoutError(f"no answer within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="run folder (default: an untrained 64 px model)")
    parser.add_argument("--slices", type=int, default=600)
    parser.add_argument("--keep", default=None, help="folder for the zip (kept), default a temporary one")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from liverlib.study_widget import max_upload_bytes, size_text

    work = Path(args.keep or tempfile.mkdtemp(prefix="large-upload-"))
    work.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else untrained_run(work / "run")
    study = work / "thin_slice_series.zip"
    start = time.perf_counter()
    if not study.exists():
        large_series_zip(study, args.slices)
    limit = max_upload_bytes()
    print(f"series zip: {study.stat().st_size / 1e6:.0f} MB ({args.slices} slices at 512 px), written in "
          f"{time.perf_counter() - start:.0f} s; app limit {size_text(limit)}", flush=True)
    too_big = work / "over_the_limit.zip"
    with open(too_big, "wb") as fh:  # sparse: the browser refuses it by its size, before reading it
        fh.truncate(limit + 2**20)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(work / "app.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "liverlib", "app", "--port", str(port), "--model", str(model)],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ok = True
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(180):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(1)
        start = time.perf_counter()
        try:
            html, seconds = asyncio.run(upload_over_websocket(url, study.name, study.read_bytes()))
            text = " ".join(re.sub(r"<[^>]+>", " ", re.sub(r'src="data:[^"]+"', "", html)).split())
            ok = "liverlib-study" in html
            print(f"{study.name} over the websocket: answer {seconds:.0f} s after sending "
                  f"({time.perf_counter() - start:.0f} s with the page): {text[:400]}", flush=True)
        except Exception as exc:
            ok = False
            print(f"{study.name}: FAILED ({type(exc).__name__}: {exc})", flush=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                        args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.route("**/*", lambda r: r.continue_() if "127.0.0.1" in r.request.url else r.abort())
            page.goto(url, wait_until="load", timeout=300_000)  # the page loads once the kernel ran the app
            button = page.get_by_role("button", name="Upload slices or a study")
            button.wait_for(timeout=180_000)
            with page.expect_file_chooser() as chooser:
                button.click()
            chooser.value.set_files(str(too_big))
            try:
                refused = page.locator(".liverlib-too-large", has_text=too_big.name)
                refused.wait_for(timeout=60_000)
                print(f"{too_big.name} ({too_big.stat().st_size / 1e6:.0f} MB) in the browser: "
                      f"{' '.join(refused.inner_text().split())}", flush=True)
            except Exception as exc:
                ok = False
                print(f"{too_big.name}: FAILED ({type(exc).__name__}); page says: "
                      f"{' '.join(page.inner_text('body').split())[:600]}", flush=True)
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
