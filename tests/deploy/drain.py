#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The graceful stop as load balancers see it, against the CLI:
- --drain-delay: from SIGTERM on, GET /ready is 503 while /health is 200,
  new connections are accepted and served, keep-alive connections stay
  keep-alive; after the delay the port refuses connections;
- a stream (/events) ends at once when the drain starts (the stop
  notification), with its last chunk, not at the 10 s drain timeout; a
  WebSocket gets close 1001;
- the race: idle keep-alive connections that send a request exactly as
  the drain starts (and at offsets around the 250 ms idle grace) get a
  whole answer or an orderly close, never a reset; those sent within the
  grace are answered with Connection: close. DRAIN_RACE_ROUNDS servers
  (default 20) x 20 connections."""
import os
import signal
import sys
import threading
import time

from common import (Fail, check, connect, get, read_response, request, run_checks, spawn_cli,
                    wait_exit)

ROUNDS = int(os.environ.get("DRAIN_RACE_ROUNDS", "20"))


def stop(proc, timeout=15):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return wait_exit(proc, timeout, "appsrv after SIGTERM")


def drain_delay():
    proc, port = spawn_cli(["-t", "2", "-p", "0", "--drain-delay", "1500"])
    try:
        ka = connect(port)
        ka.sendall(request("/health"))
        st, hd, _ = read_response(ka)
        check(st == 200 and hd.get("connection") != "close", "before: %d %r" % (st, hd))
        check(get(port, "/ready")[0] == 200, "/ready before the stop")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # The signal is asynchronous: /ready turns 503 within the delay.
        while get(port, "/ready")[0] != 503:
            check(time.monotonic() - t0 < 1.0, "/ready still 200 1 s after SIGTERM")
            time.sleep(0.01)
        served = 0
        while time.monotonic() - t0 < 1.2:  # well inside the 1.5 s delay
            st, _, body = get(port, "/health")
            check(st == 200 and body == b"OK", "new connection during the delay: %d" % st)
            ka.sendall(request("/plaintext"))
            st, hd, _ = read_response(ka)
            check(st == 200 and hd.get("connection") != "close",
                  "keep-alive during the delay: %d %r" % (st, hd))
            served += 1
            time.sleep(0.05)
        check(served >= 5, "only %d rounds in the delay" % served)
        check(proc.poll() is None, "exited during the delay")
        rc = wait_exit(proc, 15, "appsrv after the delay")
        check(rc == 0, "exit status %d" % rc)
        check(time.monotonic() - t0 >= 1.5, "exited before the 1.5 s delay")
        try:
            connect(port, timeout=2).close()
            raise Fail("port still accepts after exit")
        except ConnectionRefusedError:
            pass
        ka.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stream_ends_on_stop():
    proc, port = spawn_cli(["-t", "1", "-p", "0"])
    try:
        s = connect(port, timeout=10)
        s.sendall(request("/events?n=1000"))
        got = s.recv(4096)
        while b"\r\n\r\n" not in got:
            chunk = s.recv(4096)
            check(chunk, "EOF in the head: %r" % got)
            got += chunk
        check(got.startswith(b"HTTP/1.1 200 OK"), "stream head: %r" % got[:80])
        # The body alone, after a CRLF of its own: a head may end in "0\r\n".
        body = b"\r\n" + got.split(b"\r\n\r\n", 1)[1]
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        while not body.endswith(b"\r\n0\r\n\r\n"):
            chunk = s.recv(4096)
            check(chunk, "EOF before the last chunk: %r" % body[-80:])
            body += chunk
        dt = time.monotonic() - t0
        check(dt < 5, "stream ended %.1f s after SIGTERM (drain timeout is 10 s)" % dt)
        check(s.recv(10) == b"", "connection not closed after the stream")
        check(stop(proc) == 0, "exit status")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def websocket_gets_1001():
    """A WebSocket is told the server is going away (close 1001, RFC 6455
    §7.4.1) when the drain starts."""
    proc, port = spawn_cli(["-t", "1", "-p", "0"])
    try:
        s = connect(port, timeout=10)
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = s.recv(4096)
            check(chunk, "EOF in the handshake: %r" % got)
            got += chunk
        check(got.startswith(b"HTTP/1.1 101"), "handshake: %r" % got[:60])
        rest = got.split(b"\r\n\r\n", 1)[1]
        proc.send_signal(signal.SIGTERM)
        while len(rest) < 4:
            chunk = s.recv(4096)
            check(chunk, "EOF before a close frame: %r" % rest)
            rest += chunk
        check(rest[0] == 0x88, "first frame after SIGTERM: %r" % rest[:8])
        code = (rest[2] << 8) | rest[3]
        check(code == 1001, "close code %d, want 1001" % code)
        s.sendall(b"\x88\x82abcd" + bytes([0x03 ^ ord("a"), 0xE9 ^ ord("b")]))  # masked 1001
        check(stop(proc) == 0, "exit status")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class RaceStats:
    def __init__(self):
        self.lock = threading.Lock()
        self.answered = self.answered_close = self.orderly = self.resets = 0
        self.errors = []


def race_round(offsets, stats):
    proc, port = spawn_cli(["-t", "2", "-p", "0"])
    try:
        conns = []
        for _ in offsets:
            c = connect(port)
            c.sendall(request("/plaintext"))
            st, _, _ = read_response(c)
            check(st == 200, "warm-up %d" % st)
            conns.append(c)
        barrier = threading.Barrier(len(conns) + 1)

        def client(c, off):
            barrier.wait()
            if off > 0:
                time.sleep(off)
            try:
                c.sendall(request("/plaintext"))
                st, hd, body = read_response(c)
                with stats.lock:
                    stats.answered += 1
                    if hd.get("connection") == "close":
                        stats.answered_close += 1
                    if st != 200 or body != b"Hello, World!":
                        stats.errors.append("answer %d %r" % (st, body))
            except ConnectionResetError:
                with stats.lock:
                    stats.resets += 1
                    stats.errors.append("reset at offset %.3f" % off)
            except (Fail, BrokenPipeError) as e:
                # EOF before any byte: the orderly close after the grace.
                with stats.lock:
                    if off < 0.2:
                        stats.errors.append("offset %.3f (inside the grace): %s" % (off, e))
                    stats.orderly += 1
            finally:
                c.close()

        threads = [threading.Thread(target=client, args=(c, off)) for c, off in zip(conns, offsets)]
        for t in threads:
            t.start()
        proc.send_signal(signal.SIGTERM)
        barrier.wait()
        for t in threads:
            t.join(15)
            check(not t.is_alive(), "client thread stuck")
        check(stop(proc) == 0, "exit status")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def idle_race():
    stats = RaceStats()
    # Half at the drain's start, the rest spread over 0..400 ms (the
    # 250 ms grace ends in between).
    offsets = [0.0] * 10 + [i * 0.04 for i in range(10)]
    for _ in range(ROUNDS):
        race_round(offsets, stats)
    print("  idle race: %d requests, %d answered (%d with Connection: close), "
          "%d orderly closes after the grace, %d resets"
          % (ROUNDS * len(offsets), stats.answered, stats.answered_close, stats.orderly,
             stats.resets))
    check(not stats.errors, "; ".join(stats.errors[:10]))
    check(stats.answered + stats.orderly == ROUNDS * len(offsets), "requests unaccounted for")


if __name__ == "__main__":
    ok = run_checks("drain", [
        ("drain_delay", drain_delay),
        ("stream_ends_on_stop", stream_ends_on_stop),
        ("websocket_gets_1001", websocket_gets_1001),
        ("idle_race", idle_race),
    ])
    sys.exit(0 if ok else 1)
