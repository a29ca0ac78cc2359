"""The app's server lets uploads as large as the app's limit through, also as one websocket frame.

A whole study is a few hundred MB. tornado's defaults (10 MiB websocket messages, 100 MB read buffers)
would close the connection; Chromium sends a large message in fragments, Firefox (and tornado's client, used
here) as one frame, which only the read buffer stops.
"""

import asyncio

import pytest
import tornado.web
import tornado.websocket

from liverlib.app_server import size_for_uploads

MIB = 2**20


async def _send(size: int, limit: int | None) -> list:
    received: list = []

    class Echo(tornado.websocket.WebSocketHandler):
        def on_message(self, message):
            received.append(len(message))

        def on_close(self):
            received.append("closed")

    app = tornado.web.Application([(r"/ws", Echo)])
    if limit is not None:
        size_for_uploads(app, limit)
    server = app.listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    client = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws", max_message_size=2**31)
    try:
        await client.write_message(bytes(size), binary=True)  # one frame
    except tornado.websocket.WebSocketClosedError:
        pass
    for _ in range(100):
        if received:
            break
        await asyncio.sleep(0.05)
    client.close()
    server.stop()
    return received[:1]  # what arrived first: the message, or the connection closing


@pytest.mark.slow
def test_one_large_frame_passes_only_with_the_apps_limits():
    assert asyncio.run(_send(110 * MIB, 128 * MIB)) == [110 * MIB]
    assert asyncio.run(_send(110 * MIB, None)) == ["closed"]  # tornado's defaults: the connection closes
    assert asyncio.run(_send(20 * MIB, 16 * MIB)) == ["closed"]  # over the app's limit: closed as well


def test_the_limit_keeps_a_larger_configured_message_size():
    app = tornado.web.Application([], websocket_max_message_size=2**31)
    assert size_for_uploads(app, 100 * MIB) == 100 * MIB and app.settings["websocket_max_message_size"] == 2**31
