# SPDX-License-Identifier: MIT
#
# ws_client.py - interoperability of appsrv's WebSocket endpoints with the
# Python `websockets` package (Debian python3-websockets; run with
# /usr/bin/python3). Run by tests/test_ws_interop.c against the CLI:
# python3 ws_client.py PORT. Echo of text (also non-ASCII), binary, 64 KiB
# and 1 MiB messages and of a message the client fragments on /ws; a ping
# answered; a close with code and reason; a message over the server's cap
# (1009); the /ws/room broadcast with three members. Prints one line per
# check, exits 0 when all passed; every wait is bounded.
import asyncio
import sys

import websockets

PORT = int(sys.argv[1])
BASE = "ws://127.0.0.1:%d" % PORT


def check(cond, what):
    if not cond:
        print("FAIL " + what, file=sys.stderr)
        sys.exit(1)
    print("ok " + what)


async def main():
    async with websockets.connect(BASE + "/ws", max_size=None) as ws:
        for t in ["hello", "κόσμε €😀", "", "x" * (1 << 20)]:
            await ws.send(t)
            check(await ws.recv() == t, "text echo of %d chars" % len(t))
        for b in [bytes([0, 1, 2, 255]), bytes(i * 7 & 255 for i in range(65536))]:
            await ws.send(b)
            check(await ws.recv() == b, "binary echo of %d bytes" % len(b))
        # websockets fragments a message given as an iterable
        await ws.send(["frag", "men", "ted €"])
        check(await ws.recv() == "fragmented €", "fragmented text reassembled")
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        check(True, "ping answered")
        await ws.close(4000, "bye")
        check(ws.close_code == 4000, "close 4000 echoed (got %s)" % ws.close_code)

    async with websockets.connect(BASE + "/ws", max_size=None) as ws:
        await ws.send(bytes((1 << 20) + 1))
        try:
            await ws.recv()
            check(False, "a message over the cap must close the connection")
        except websockets.ConnectionClosed as e:
            check(e.rcvd is not None and e.rcvd.code == 1009,
                  "message over the cap closed with 1009 (got %s)" % e.rcvd)

    room = [await websockets.connect(BASE + "/ws/room") for _ in range(3)]
    for i, ws in enumerate(room):
        await ws.send("from %d" % i)
    for i, ws in enumerate(room):
        got = sorted([await ws.recv() for _ in range(3)])
        check(got == ["from 0", "from 1", "from 2"], "room member %d got all three" % i)
    for ws in room:
        await ws.close()
    print("all ok")


asyncio.run(asyncio.wait_for(main(), 20))
