"""The course's executors start kernels over encrypted sockets where jupyter_client and pyzmq allow it."""

import json

import pytest

from liverlib import kernels


def test_without_curve_support_the_settings_are_empty(monkeypatch):
    import zmq

    monkeypatch.setattr(zmq, "has", lambda capability: False)
    assert not kernels.encryption_available()
    assert kernels.kernel_manager_config() == {} and kernels.command_line_options() == []


def test_a_kernel_started_with_the_course_settings_is_encrypted_and_says_nothing_about_it(tmp_path):
    if not kernels.encryption_available():
        pytest.skip("this jupyter_client has no transport_encryption, or pyzmq has no CurveZMQ")
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    assert kernels.command_line_options() == ["--KernelManager.transport_encryption=auto"]
    stderr = tmp_path / "kernel.err"
    with open(stderr, "w") as sink:
        km = KernelManager(kernel_name="python3", config=Config(kernels.kernel_manager_config()),
                           connection_file=str(tmp_path / "kernel.json"))
        km.start_kernel(stderr=sink, stdout=sink)
        try:
            client = km.client()
            client.start_channels()
            client.wait_for_ready(timeout=60)
            reply = client.execute_interactive("6 * 7", timeout=60, output_hook=lambda msg: None)
            assert reply["content"]["status"] == "ok"
            client.stop_channels()
            connection = json.loads((tmp_path / "kernel.json").read_text())
        finally:
            km.shutdown_kernel(now=True)
    assert connection.get("curve_publickey") and connection.get("curve_secretkey")  # the kernel got its key pair
    assert "without encryption" not in stderr.read_text()


def test_the_app_server_is_started_with_the_settings(monkeypatch):
    from liverlib import app_server

    commands = []
    monkeypatch.setattr(app_server.subprocess, "call", lambda command, env: commands.append(command) or 0)
    monkeypatch.setattr(app_server.shutil, "which", lambda *args, **kwargs: "/usr/bin/voila")
    assert app_server.launch() == 0
    assert commands and all(option in commands[0] for option in kernels.command_line_options())
