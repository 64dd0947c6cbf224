"""Relaying a response body that ends with the connection, in the kernel (``os.splice``).

Bulk downloads (`docker cp` out, `export`, `save`) and `logs` are forwarded with
``Connection: close``, so their body ends where dockerd closes the connection: the proxy has no
framing to follow and no reason to look at the bytes. Reading them into Python (a fresh
``bytes`` per read, the StreamReader's buffer, the transport's) cost ~1.4 s of CPU per GiB of a
download and 2.6 s of logs (one chunk per line), taken from dockerd on a small machine. Here
they go socket → pipe → socket without entering user space.

Why a thread with a blocking read: dockerd writes ~32 KiB at a time, and an event loop wakes
for each write (measured: 26k wake-ups and 90k splices per GiB, 0.6-0.8 s of CPU). A blocking
splice with ``SO_RCVLOWAT`` returns only once ``BATCH`` bytes are in (or ``SO_RCVTIMEO`` has
passed with fewer, so a trickle is not held back long): ~8k splices per GiB, 0.3-0.4 s. The
kernel still moves each of dockerd's writes into the pipe as it lands, so dockerd never waits
on a full socket; that is also most of what is left (a context switch of the thread per write,
and one of dockerd's writer per skb freed): sleeping between reads instead was measured to
cost more CPU and to stall a fast download (docs/benchmarks.md).

Backpressure is the pipe: the thread reads again only once the client has taken everything in
it, so a slow client costs at most one pipe of kernel memory and nothing in the process. The
thread works on duplicates of the two sockets' descriptors (the asyncio transports keep
theirs). The upstream socket is made blocking, which its paused transport shares and never
notices (it is only closed afterwards); the client's stays non-blocking (its transport still
reads requests from it), and the thread polls it when it is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import select
import socket
import struct
import threading
from pathlib import Path

__all__ = ["BATCH", "PIPE_SIZE", "SpliceRelay"]

#: Wanted pipe capacity: the most that is read from dockerd before the client takes it.
PIPE_SIZE = 1024 * 1024
#: A read returns once this much is in (``SO_RCVLOWAT``) ...
BATCH = 256 * 1024
#: ... or once this long (µs, rounded up to the kernel's tick) has passed with fewer.
BATCH_WAIT_US = 5000


def _pipe_size() -> int:
    try:
        limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except (OSError, ValueError):
        return PIPE_SIZE
    return min(PIPE_SIZE, limit)


def _socket_owning(fd: int) -> socket.socket:
    try:
        return socket.socket(fileno=fd)
    except BaseException:
        os.close(fd)
        raise


class SpliceRelay:
    """Moves bytes from socket ``src`` to socket ``dst`` (descriptors, not owned) until
    ``src`` reaches EOF, or until ``stop()``."""

    def __init__(self, src: int, dst: int) -> None:
        self._sockets = (src, dst)
        self._upstream: socket.socket | None = None
        self._wake_w = -1
        self._stopped = False
        self._error: BaseException | None = None  # what ended the thread, if not EOF
        self.moved = 0

    def stop(self) -> None:
        """End the relay early (the client went away). Shutting the upstream's reading down
        wakes the blocked splice and tells dockerd (its writes fail) to stop producing."""
        self._stopped = True
        if self._upstream is not None:
            with contextlib.suppress(OSError):
                self._upstream.shutdown(socket.SHUT_RD)
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    async def run(self) -> int:
        """Relay until EOF and return the number of bytes moved; a failing socket raises
        ``OSError``. The thread has ended and every descriptor opened here is closed on the
        way out, even if cancelled."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def finish() -> None:
            if not done.done():
                done.set_result(None)

        with contextlib.ExitStack() as stack:
            upstream = _socket_owning(os.dup(self._sockets[0]))
            stack.callback(upstream.close)
            dst = os.dup(self._sockets[1])
            stack.callback(os.close, dst)
            pipe_r, pipe_w = os.pipe2(os.O_CLOEXEC)
            stack.callback(os.close, pipe_r)
            stack.callback(os.close, pipe_w)
            wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            stack.callback(os.close, wake_r)
            stack.callback(os.close, self._wake_w)
            stack.callback(setattr, self, "_wake_w", -1)
            with contextlib.suppress(OSError):  # a smaller pipe is only slower
                fcntl.fcntl(pipe_w, fcntl.F_SETPIPE_SZ, _pipe_size())
            capacity = fcntl.fcntl(pipe_w, fcntl.F_GETPIPE_SZ)
            upstream.setblocking(True)
            upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, min(BATCH, capacity))
            timeout = struct.pack("@ll", 0, BATCH_WAIT_US)  # struct timeval
            upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
            self._upstream = upstream
            stack.callback(setattr, self, "_upstream", None)

            def work() -> None:
                try:
                    self._relay(upstream.fileno(), dst, (pipe_r, pipe_w), wake_r, capacity)
                except BaseException as exc:  # raised in the awaiting task
                    self._error = exc
                finally:
                    loop.call_soon_threadsafe(finish)

            thread = threading.Thread(target=work, name="eci-splice", daemon=True)
            thread.start()
            try:
                if self._stopped:  # stopped before the thread could be woken
                    self.stop()
                await done
            finally:
                self.stop()  # (a no-op for a thread that has ended)
                thread.join()  # quick: stop() wakes each of its blocking calls
        if self._error is not None:
            raise self._error
        return self.moved

    def _relay(self, src: int, dst: int, pipe: tuple[int, int], wake: int, capacity: int) -> None:
        """The thread: read a batch into the (empty) pipe, write all of it out, again."""
        pipe_r, pipe_w = pipe
        readable, writable = select.poll(), select.poll()
        readable.register(src, select.POLLIN)
        readable.register(wake, select.POLLIN)
        writable.register(dst, select.POLLOUT)
        writable.register(wake, select.POLLIN)
        while not self._stopped:
            try:  # blocking (no SPLICE_F_NONBLOCK: it would make the socket read non-blocking)
                n = os.splice(src, pipe_w, capacity, flags=os.SPLICE_F_MOVE)
            except BlockingIOError:  # SO_RCVTIMEO passed with nothing: wait without a timeout
                readable.poll()
                continue
            if n == 0:
                return
            while n and not self._stopped:
                try:
                    sent = os.splice(pipe_r, dst, n, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
                except BlockingIOError:  # the client has not caught up
                    writable.poll()
                    continue
                n -= sent
                self.moved += sent
