"""The web app's server: Voilà serving ``liverlib/app.ipynb``, sized for the app's uploads (``liverlib app``).

An upload travels from the browser to the kernel as one websocket message holding every file of the upload.
Two server limits stand in its way, both far below a whole study (a thin-slice CT series zipped is a few
hundred MB):

* tornado's ``websocket_max_message_size`` (10 MiB by default): a larger message closes the connection;
* the connection's read buffer (``max_buffer_size`` of tornado's HTTP server, 100 MB by default, which
  Voilà does not expose): a browser that sends a message as one frame (Firefox does; Chromium sends
  fragments) closes the connection above it.

Both are set to :func:`liverlib.study_widget.transport_limit_bytes`: the app's own upload limit
(``$LIVERLIB_APP_MAX_UPLOAD_MB``, default :data:`liverlib.study_widget.MAX_UPLOAD_MB`) plus room for the
message's own bytes, so every upload up to the limit reaches the kernel, and one a little over it reaches the
kernel too and is refused there with a message. The browser refuses larger ones before sending them
(:func:`liverlib.study_widget.upload_guard_html`).

:func:`launch` starts ``python -m liverlib.app_server NOTEBOOK ...`` (Voilà's own command line) with the
environment set; :func:`main` is that process.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from liverlib.errors import LiverlibError
from liverlib.kernels import command_line_options
from liverlib.study_widget import MAX_UPLOAD_ENV, transport_limit_bytes

def launch(model: str | None = None, port: int = 8866, ip: str = "127.0.0.1",
           max_upload_mb: float | None = None) -> int:
    """Serve the app until Ctrl-C; return the server's exit status."""
    from liverlib.widget import MODEL_ENV  # the run folder the app serves (widget.find_run reads it)

    if shutil.which("voila", path=str(Path(sys.executable).parent)) is None and shutil.which("voila") is None:
        raise LiverlibError("Voila is not installed; install the app extra: pip install 'liverlib[app]'")
    env = dict(os.environ)
    if model:
        if not Path(model).is_dir():
            raise LiverlibError(f"run folder {model} does not exist; train one with `liverlib train`")
        env[MODEL_ENV] = str(Path(model).resolve())
    if max_upload_mb is not None:
        if not max_upload_mb > 0:
            raise LiverlibError(f"--max-upload-mb must be a positive number of MB, got {max_upload_mb:g}")
        env[MAX_UPLOAD_ENV] = f"{max_upload_mb:g}"  # read by this server and by the kernel (the widget)
    notebook = Path(__file__).with_name("app.ipynb")
    command = [sys.executable, "-m", "liverlib.app_server", str(notebook), f"--port={port}", f"--Voila.ip={ip}",
               "--no-browser", "--show_tracebacks=False", "--strip_sources=True", *command_line_options()]
    print(f"serving the classifier on http://{ip}:{port}/ (Ctrl-C stops it)", flush=True)
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0


def size_for_uploads(app, limit: int | None = None) -> int:
    """Let one websocket message of ``limit`` bytes (default :func:`transport_limit_bytes`) through a tornado
    ``app`` that is about to listen: its message size setting and its connections' read buffers. Returns
    the limit."""
    limit = transport_limit_bytes() if limit is None else int(limit)
    configured = int(app.settings.get("websocket_max_message_size") or 0)  # --Voila.tornado_settings
    app.settings["websocket_max_message_size"] = max(configured, limit)
    app.listen = functools.partial(app.listen, max_buffer_size=limit, max_body_size=limit)
    return limit


def server_class():
    """Voilà with websocket messages and read buffers as large as the app's uploads need."""
    from voila.app import Voila  # local: the app extra

    class AppServer(Voila):
        def listen(self):
            size_for_uploads(self.app)
            super().listen()

    return AppServer


def main(argv: list[str] | None = None) -> None:
    server_class().launch_instance(argv)


if __name__ == "__main__":
    main()
