"""The API server's connections: idle ones wait without a thread, requests get a bounded pool.

The stdlib server gave every connection a thread for its whole life: 2,000 idle keep-alive
connections were 2,074 threads (+100 MB), and a slowloris held one per trickled head.
Here one selector thread ("edge-http-idle") holds every connection between requests and
while its request head arrives; only a complete head is handed to a worker thread, which
runs http.server's handler for that one request and hands the connection back.

Invariants:
- a connection waits at most ``idle`` seconds (5 s) for the first byte of its next request
  (the first one included), then is closed without a word (what HTTP/1.1 allows of an idle
  keep-alive connection; clients retry on a fresh one);
- from its first byte, a request head (request line and headers) must be complete within
  ``head`` seconds (10 s) however slowly it trickles, and within ``MAX_HEAD_BYTES``
  (64 KiB): else 408 or 431 and the connection is closed. No thread waits for a head;
- a body must arrive within ``body`` seconds (30 s) of its head, read by the worker (a
  Content-Length over the body limit is refused before that, 413); else it is closed;
- at most ``workers`` (16) threads run requests, started as needed, each ending after
  ``worker_idle`` seconds (10 s) without one; a request waits in a queue when all are
  busy (a request holds one only while it is read, run and answered). At most
  ``max_connections`` (4,096) are open: past it, a new one is answered at once on the
  accept thread with 503 ``busy`` and ``Retry-After: 1`` and closed. So threads and
  descriptors stay bounded whatever clients do;
- bytes past a request (pipelining) stay with its connection: a complete next head is
  run by the same worker, a partial one waits in the selector with the head deadline;
- ``close`` (the server's stop) closes every waiting connection; a worker closes its
  connection after the request it is running.
"""

from __future__ import annotations

import heapq
import io
import itertools
import json
import logging
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MAX_HEAD_BYTES", "Conn", "ConnLimits", "Connections", "Writer", "tiny_response"]

log = logging.getLogger("edge.http")

MAX_HEAD_BYTES = 64 * 1024
WRITE_TIMEOUT = 30.0  # a response the client does not read within this is dropped
_HEAD_ENDS = (b"\r\n\r\n", b"\n\n")


@dataclass(frozen=True)
class ConnLimits:
    idle: float = 5.0
    head: float = 10.0
    body: float = 30.0
    workers: int = 16
    worker_idle: float = 10.0  # a worker with no request for this long ends
    max_connections: int = 4096


def tiny_response(status: int, reason: str, code: str, message: str, hint: str,
                  extra: str = "") -> bytes:
    """A complete JSON error response that closes the connection (no handler needed)."""
    body = json.dumps({"error": {"code": code, "message": message, "hint": hint}}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\nServer: edge\r\n"
            "Content-Type: application/json\r\nCache-Control: no-store\r\n"
            f"X-Content-Type-Options: nosniff\r\n{extra}Connection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _head_done(buf: bytearray) -> bool:
    return any(end in buf for end in _HEAD_ENDS)


class Conn(io.BufferedIOBase):
    """One connection: its socket, the bytes read past the last request, its deadline.
    A worker's handler reads the request from it (``readline``, ``read``)."""

    def __init__(self, sock: socket.socket, addr: object) -> None:
        super().__init__()
        self.sock = sock
        self.addr = addr
        self.buf = bytearray()
        self.deadline = 0.0
        self.phase = "idle"  # idle, head (in the selector), busy, body (in a worker)
        self.seq = 0  # which deadline entry in the selector's heap is current

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass  # the handler's finish() closes its rfile: the connection may live on

    def _take(self, n: int) -> bytes:
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _fill(self) -> bool:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def readline(self, limit: int | None = -1) -> bytes:
        limit = -1 if limit is None else limit
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0 and (limit < 0 or i < limit):
                return self._take(i + 1)
            if 0 <= limit <= len(self.buf):
                return self._take(limit)
            start = len(self.buf)
            if not self._fill():
                return self._take(len(self.buf))

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            raise io.UnsupportedOperation("read to the end of a connection")
        while len(self.buf) < n and self._fill():
            pass
        return self._take(min(n, len(self.buf)))

    def expect_body(self, seconds: float) -> None:
        self.phase, self.deadline = "body", time.monotonic() + seconds

    def answered(self) -> None:
        """The request is read (or refused): what follows is writing the response."""
        self.phase = "busy"
        self.sock.settimeout(WRITE_TIMEOUT)

    def shut(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Connections:
    """Every open connection: waiting in the selector, or run by a worker via ``serve``
    (which handles one request and says whether to keep the connection)."""

    def __init__(self, limits: ConnLimits, serve: Callable[[Conn], bool]) -> None:
        self.limits = limits
        self._serve = serve
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)  # the accept thread must never wait on it
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._incoming: list[Conn] = []
        self._lock = threading.Lock()
        self._open = 0
        self._heap: list[tuple[float, int, Conn]] = []
        self._seq = itertools.count(1)
        self._jobs: queue.SimpleQueue[Conn | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._idle_workers = 0
        self._pending = 0  # requests queued for a worker
        self.closing = False
        self._thread = threading.Thread(target=self._run, name="edge-http-idle", daemon=True)
        self._thread.start()

    @property
    def counts(self) -> tuple[int, int]:
        """(open connections, worker threads)."""
        return self._open, len(self._workers)

    def admit(self, sock: socket.socket, addr: object) -> None:
        """A just-accepted connection (on the accept thread: never blocks)."""
        with self._lock:
            full = self.closing or self._open >= self.limits.max_connections
            if not full:
                self._open += 1
        if full:
            _send_and_close(sock, tiny_response(
                503, "Service Unavailable", "busy",
                f"the node has {self.limits.max_connections} connections open, its limit",
                "retry after the Retry-After seconds", "Retry-After: 1\r\n"))
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self._park(Conn(sock, addr))

    def _park(self, conn: Conn) -> None:
        with self._lock:
            self._incoming.append(conn)
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass  # the pipe is full: the selector is awake already

    def _drop(self, conn: Conn, answer: bytes = b"") -> None:
        if answer:
            _send_and_close(conn.sock, answer)
        else:
            conn.shut()
        with self._lock:
            self._open -= 1

    # ---- the selector thread -------------------------------------------------

    def _watch(self, conn: Conn, now: float) -> None:
        conn.phase = "head" if conn.buf else "idle"
        limit = self.limits.head if conn.buf else self.limits.idle
        conn.deadline = now + limit
        conn.seq = next(self._seq)
        heapq.heappush(self._heap, (conn.deadline, conn.seq, conn))

    def _unwatch(self, conn: Conn) -> None:
        self._sel.unregister(conn.sock)
        conn.seq = 0  # its deadline entry in the heap is void

    def _run(self) -> None:
        while not self.closing:
            timeout = max(0.0, self._heap[0][0] - time.monotonic()) if self._heap else None
            for key, _ in self._sel.select(timeout):
                if key.data is None:
                    self._take_incoming()
                    continue
                try:
                    self._readable(key.data)
                except Exception:  # this thread serves every waiting connection: never die
                    log.exception("unexpected error on a waiting HTTP connection")
                    self._unwatch(key.data)
                    self._drop(key.data)
            self._expire(time.monotonic())
        for key in list(self._sel.get_map().values()):
            if key.data is not None:
                self._drop(key.data)
        self._sel.close()

    def _take_incoming(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass
        with self._lock:
            incoming, self._incoming = self._incoming, []
        now = time.monotonic()
        for conn in incoming:
            if self.closing:
                self._drop(conn)
                continue
            conn.sock.setblocking(False)
            self._watch(conn, now)
            self._sel.register(conn.sock, selectors.EVENT_READ, conn)

    def _readable(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(max(1, min(65536, MAX_HEAD_BYTES + 1 - len(conn.buf))))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._unwatch(conn)
            self._drop(conn)
            return
        was_idle = not conn.buf
        conn.buf += data
        if _head_done(conn.buf):
            self._unwatch(conn)
            conn.sock.setblocking(True)
            self._dispatch(conn)
        elif len(conn.buf) > MAX_HEAD_BYTES:
            self._unwatch(conn)
            self._drop(conn, tiny_response(
                431, "Request Header Fields Too Large", "headers_too_large",
                f"the request head is over {MAX_HEAD_BYTES // 1024} KiB",
                "send fewer or shorter headers"))
        elif was_idle:
            self._watch(conn, time.monotonic())  # the head deadline runs from its first byte

    def _expire(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, seq, conn = heapq.heappop(self._heap)
            if seq != conn.seq:
                continue  # superseded: the connection moved on since
            self._unwatch(conn)
            if conn.phase == "idle":
                self._drop(conn)
            else:
                self._drop(conn, tiny_response(
                    408, "Request Timeout", "request_timeout",
                    f"the request head did not arrive within {self.limits.head:g} s",
                    "send the request line and headers at once"))

    # ---- workers --------------------------------------------------------------

    def _dispatch(self, conn: Conn) -> None:
        conn.phase = "busy"
        conn.deadline = time.monotonic() + self.limits.head
        with self._lock:
            self._pending += 1
            start = (self._pending > self._idle_workers
                     and len(self._workers) < self.limits.workers)
            if start:
                t = threading.Thread(target=self._work, name="edge-http", daemon=True)
                self._workers.append(t)
        if start:
            t.start()
        self._jobs.put(conn)

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle_workers += 1
            try:
                conn = self._jobs.get(timeout=self.limits.worker_idle)
            except queue.Empty:
                with self._lock:
                    # A request queued as this wait ended counted this worker as idle
                    # (and started none): stay for it.
                    if self._pending == 0:
                        self._idle_workers -= 1
                        self._workers.remove(threading.current_thread())
                        return
                    self._idle_workers -= 1
                continue
            with self._lock:
                self._idle_workers -= 1
                self._pending -= conn is not None
            if conn is None:
                return
            self._run_requests(conn)

    def _run_requests(self, conn: Conn) -> None:
        try:
            while self._serve(conn) and not self.closing:
                if not _head_done(conn.buf):
                    self._park(conn)  # a partial next head waits in the selector
                    return
                conn.phase = "busy"  # pipelined: the next head is here already
                conn.deadline = time.monotonic() + self.limits.head
        except Exception:
            log.exception("unexpected error on an HTTP connection")
        self._drop(conn)

    def close(self) -> None:
        """Stop: close every waiting connection; workers end after their request."""
        self.closing = True
        self._wake()
        self._thread.join(timeout=5)
        with self._lock:
            parked, self._incoming = self._incoming, []
        for conn in parked:
            self._drop(conn)
        with self._lock:
            workers = len(self._workers)
        for _ in range(workers):
            self._jobs.put(None)
        self._wake_r.close()
        self._wake_w.close()


class Writer(io.BufferedIOBase):
    """A handler's output: straight to the socket (http.server writes a response at once)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._sock.sendall(data)
        return len(data)


def _send_and_close(sock: socket.socket, data: bytes) -> None:
    """Answer without blocking (a few hundred bytes fit any send buffer) and close."""
    try:
        sock.setblocking(False)
        sock.send(data)
        sock.shutdown(socket.SHUT_WR)
        # Closing with unread input resets the connection, which can discard the answer
        # before the client reads it: take what already arrived first.
        for _ in range(4):
            if not sock.recv(65536):
                break
    except OSError:
        pass
    finally:
        sock.close()
