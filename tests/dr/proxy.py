"""A loopback TCP proxy that can pass, refuse or blackhole traffic: a bucket outage
without touching the S3 server. Threads only; bounded; stops with close()."""

from __future__ import annotations

import socket
import struct
import threading


class FlakyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.mode = "pass"  # "pass" | "refuse" (reset at once) | "blackhole" (silence)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        if mode != "pass":
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
            threading.Thread(target=self._pipe, args=(client, up), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, client), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data or self.mode != "pass":
                    break
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
