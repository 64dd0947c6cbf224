"""The memory attack on the proxy, as a script a docker-group user runs (stdlib only, so it runs
as that user with ``/usr/bin/python3 -I``, SO_PEERCRED then names that user).

    flood.py SOCKET body COUNT SIZE   COUNT connections, each a chunked `containers/create`
                                      body of SIZE bytes, never its last chunk
    flood.py SOCKET held COUNT SIZE   the same with a Content-Length of SIZE + 1
    flood.py SOCKET idle COUNT        COUNT connections that send nothing
    flood.py SOCKET ping              one `GET /_ping` on a new connection
    flood.py SOCKET create SIZE       one `containers/create` whose body is SIZE bytes
    flood.py SOCKET stall-head        a request head that never ends
    flood.py SOCKET stall-body        a create whose body stops after its first bytes

``body`` and ``idle`` print one JSON line once every connection is set up (all bytes sent, or
the proxy stopped taking them): ``{"opened": n, "answers": {"413": k, ...}, "messages": [...]}``
(what the proxy answered on the connections it ended), then hold the connections open until
stdin closes. The others print ``{"status": s, "message": m, "seconds": t}``: the answer, and
how long it took to come (or for the proxy to close the connection; 0 if it did neither within
``WAIT``).

Also used by bench/proxy_memory.py.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time

PIECE = 64 * 1024
#: how long a connection waits for the proxy's answer once it stopped taking the body
ANSWER_WAIT = 0.5
#: how long a single request waits for an answer
WAIT = 60.0
#: on what `create` creates, to clean it up
LABEL = "eci-test-flood"
CREATE = (
    b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
)


def answer(sock: socket.socket, wait: float) -> tuple[int, str] | None:
    """The status and message of a response the proxy sent, if one arrives within ``wait``."""
    sock.settimeout(wait)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        return None
    status = int(head.split()[1])
    try:
        message = str(json.loads(body[body.find(b"{") : body.rfind(b"}") + 1])["message"])
    except (ValueError, KeyError, TypeError):
        message = ""
    return status, message


def stalled_body(
    path: str, size: int, chunked: bool, out: list[tuple[socket.socket, int, str]]
) -> None:
    """One connection: a create with a body of ``size`` bytes, never ended."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    if chunked:
        head = CREATE + b'Transfer-Encoding: chunked\r\n\r\n3\r\n{"a\r\n'
        piece = b"%x\r\n%s\r\n" % (PIECE, b" " * PIECE)
    else:
        head = CREATE + b'Content-Length: %d\r\n\r\n{"a' % (size + 1)
        piece = b" " * PIECE
    try:
        sock.sendall(head)
        for _ in range((size - 3) // PIECE):
            sock.sendall(piece)
    except OSError:
        pass  # the proxy ended the connection: what did it say?
    got = answer(sock, ANSWER_WAIT)
    out.append((sock, *(got or (0, ""))))


def hold(connections: list[tuple[socket.socket, int, str]]) -> None:
    answers: dict[str, int] = {}
    for _, status, _ in connections:
        answers[str(status)] = answers.get(str(status), 0) + 1
    messages = sorted({m for _, _, m in connections if m})
    print(json.dumps({"opened": len(connections), "answers": answers, "messages": messages}))
    sys.stdout.flush()
    sys.stdin.read()  # until the caller closes our stdin
    for sock, _, _ in connections:
        sock.close()


def single(path: str, mode: str, args: list[str]) -> None:
    if mode == "ping":
        data = b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"
    elif mode == "create":
        start = b'{"Image": "busybox", "Labels": {"%s": "1"}' % LABEL.encode()
        body = start + b" " * max(0, int(args[0]) - len(start) - 1) + b"}"
        data = CREATE + b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    elif mode == "stall-head":
        data = b"GET /_ping HTTP/1.1\r\nHost: docker\r\n"
    else:  # stall-body
        data = CREATE + b'Content-Length: 1000\r\n\r\n{"Image": '
    start = time.perf_counter()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        with contextlib.suppress(OSError):  # the proxy answered before taking it all
            sock.sendall(data)
        status, message = answer(sock, WAIT) or (0, "")
    seconds = time.perf_counter() - start
    print(json.dumps({"status": status, "message": message, "seconds": seconds}))


def main() -> None:
    path, mode = sys.argv[1], sys.argv[2]
    if mode not in ("body", "held", "idle"):
        single(path, mode, sys.argv[3:])
        return
    count = int(sys.argv[3])
    connections: list[tuple[socket.socket, int, str]] = []
    if mode == "idle":
        for _ in range(count):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            connections.append((sock, 0, ""))
    else:
        size = int(sys.argv[4])
        threads = [
            threading.Thread(
                target=stalled_body, args=(path, size, mode == "body", connections), daemon=True
            )
            for _ in range(count)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    hold(connections)


if __name__ == "__main__":
    main()
