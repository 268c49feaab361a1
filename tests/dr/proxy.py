"""A loopback TCP proxy that can pass, refuse, blackhole or delay traffic: a bucket
outage, or a slow bucket, without touching the S3 server. Threads only; bounded;
stops with close().

"delay" is a latency line, not a cut: every chunk is forwarded in order, ``delay``
seconds after it arrived, in the chosen directions (replies only by default: a
request lands at once and its answer comes late, the worst case for a client that
measures from the answer)."""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time


class FlakyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.mode = "pass"  # "pass" | "refuse" (reset at once) | "blackhole" (silence) | "delay"
        self.delay = 0.0
        self.delay_requests = False
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def set_mode(self, mode: str, delay: float = 0.0, requests: bool = False) -> None:
        """``delay`` and ``requests`` apply to "delay": seconds added to every chunk, and
        whether requests are delayed too (replies always are)."""
        self.delay, self.delay_requests = delay, requests
        self.mode = mode
        if mode in ("refuse", "blackhole"):
            # Cut what is established too: an outage does not spare open connections.
            with self._lock:
                conns, self._conns = self._conns, []
            for c in conns:
                try:
                    c.close()
                except OSError:
                    pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.mode == "refuse":
                # SO_LINGER 0: close with a RST, like a refused or reset connection.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            with self._lock:
                self._conns.append(client)
            if self.mode == "blackhole":
                continue  # hold it open, never answer
            try:
                up = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.append(up)
            threading.Thread(target=self._pipe, args=(client, up, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, client, False), daemon=True).start()

    def _lag(self, request: bool) -> float:
        if self.mode != "delay":
            return 0.0
        return self.delay if (self.delay_requests or not request) else 0.0

    def _pipe(self, src: socket.socket, dst: socket.socket, request: bool) -> None:
        line: queue.Queue[tuple[float, bytes]] = queue.Queue()
        sender = threading.Thread(target=self._send, args=(line, src, dst), daemon=True)
        sender.start()
        try:
            while True:
                data = src.recv(65536)
                if not data or self.mode in ("refuse", "blackhole"):
                    break
                line.put((time.monotonic() + self._lag(request), data))
        except OSError:
            pass
        finally:
            line.put((0.0, b""))  # the end: the sender closes both after what is queued

    def _send(self, line: queue.Queue[tuple[float, bytes]], src: socket.socket,
              dst: socket.socket) -> None:
        try:
            while True:
                due, data = line.get()
                if not data or self.mode in ("refuse", "blackhole"):
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # the latency this proxy exists to add
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.set_mode("refuse")
