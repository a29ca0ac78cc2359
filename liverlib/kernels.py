"""How the course's own executors start Jupyter kernels: over ZeroMQ with CurveZMQ transport encryption.

A kernel talks to its client over local TCP sockets. ipykernel 7 warns at every start when those sockets are
not encrypted ("Kernel is running over TCP without encryption ... susceptible to eavesdropping"), and it is
right to: any local user can read a plain-text connection. jupyter_client 8.10 can hand the kernel a CurveZMQ
key pair (``KernelManager.transport_encryption``: ``"auto"`` encrypts when the kernelspec declares
``supported_encryption: curve``, as ipykernel 7's does), but leaves it off by default. The book build's chapter
streams (``scripts/execute_chapters.py``) and the app's Voilà server (:mod:`liverlib.app_server`) turn it on with
the settings below, so their kernels run encrypted and start without the warning.

Older jupyter_client releases have no such setting, and a pyzmq built without libsodium has no CurveZMQ; there
the settings are empty and kernels start as before (:func:`encryption_available` says which).
"""

from __future__ import annotations

POLICY = "auto"
"""``transport_encryption`` for the course's kernels: encrypt when the kernel declares that it can."""


def encryption_available() -> bool:
    """Whether the installed jupyter_client has ``transport_encryption`` and pyzmq has CurveZMQ."""
    try:
        import zmq
        from jupyter_client.manager import KernelManager
    except ImportError:
        return False
    return "transport_encryption" in KernelManager.class_trait_names() and bool(zmq.has("curve"))


def kernel_manager_config() -> dict[str, dict[str, str]]:
    """Traitlets settings for a kernel manager (``traitlets.config.Config(kernel_manager_config())``), empty
    where :func:`encryption_available` is false."""
    return {"KernelManager": {"transport_encryption": POLICY}} if encryption_available() else {}


def command_line_options() -> list[str]:
    """The same settings as options of a Jupyter application's command line (Voilà's)."""
    return [f"--{section}.{name}={value}" for section, settings in kernel_manager_config().items()
            for name, value in settings.items()]
