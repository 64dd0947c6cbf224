"""Helpers for the transparency tests: one workload run through the proxy and directly.

``proxy`` is the user socket (the policing proxy), ``direct`` dockerd's own raw socket. The
Docker CLI runs as root on both, so the path is the only difference between the two runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docker
from tests.support import EngineHandle

PATHS = ("proxy", "direct")
T = TypeVar("T")


def unique(prefix: str = "compat") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def socket_of(engine: EngineHandle, path: str) -> Path:
    assert path in PATHS, path
    return engine.layout.user_socket if path == "proxy" else engine.layout.raw_socket


def host_of(engine: EngineHandle, path: str) -> str:
    return f"unix://{socket_of(engine, path)}"


def docker_argv(engine: EngineHandle, path: str, *args: str, cli: str = "docker") -> list[str]:
    return [cli, "-H", host_of(engine, path), *args]


def docker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Root's environment without anything that would point the CLI elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    return {**env, **(extra or {})}


def sh(
    engine: EngineHandle,
    path: str,
    *args: str,
    cli: str = "docker",
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """The Docker CLI as root on one path; bytes in, bytes out."""
    argv = docker_argv(engine, path, *args, cli=cli)
    result = subprocess.run(
        argv,
        input=input if input is not None else b"",
        capture_output=True,
        timeout=timeout,
        env=docker_env(env),
        cwd=cwd,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {result.returncode}\nstdout:\n{result.stdout[:2000]!r}\n"
            f"stderr:\n{result.stderr[:2000]!r}"
        )
    return result


def on_both(fn: Callable[[str], T]) -> dict[str, T]:
    """The same workload on both paths (proxy first)."""
    return {path: fn(path) for path in PATHS}


def assert_same(results: dict[str, Any]) -> Any:
    """Both paths gave the same result; returns it."""
    assert results["proxy"] == results["direct"], (
        f"proxy and direct differ:\nproxy:  {results['proxy']!r}\ndirect: {results['direct']!r}"
    )
    return results["direct"]


_HEX = re.compile(rb"\b[0-9a-f]{12}(?:[0-9a-f]{52})?\b")


def without_ids(data: bytes, *names: str) -> bytes:
    """Output with object ids (12 or 64 hex digits) and the given names replaced by
    placeholders, for outputs that differ between two runs only by what was created."""
    for i, name in enumerate(names):
        data = data.replace(name.encode(), f"<name{i}>".encode())
    return _HEX.sub(b"<id>", data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pattern_bytes(size: int, seed: str = "compat") -> bytes:
    """Deterministic, incompressible-looking content of ``size`` bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def tar_members(data: bytes) -> list[tuple[str, str, int]]:
    """(name, kind, size) of every member of a tar stream, sorted by name."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|*") as tar:
        return sorted((m.name, _kind(m), m.size) for m in tar)


def _kind(member: tarfile.TarInfo) -> str:
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    return "file" if member.isfile() else "other"


def tar_file(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        extracted = tar.extractfile(name)
        assert extracted is not None, name
        return extracted.read()


def make_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


# ---- the engine's processes -----------------------------------------------------------------
def engine_state(engine: EngineHandle) -> dict[str, Any]:
    return dict(json.loads(engine.layout.state_file.read_text()))


def pid_of(engine: EngineHandle, process: str) -> int:
    return int(engine_state(engine)["processes"][process]["pid"])


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for(predicate: Callable[[], bool], timeout: float = 10, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


# ---- streaming commands ---------------------------------------------------------------------
class Streaming:
    """A long-running CLI command (``logs -f``, ``events``, ``attach``) whose stdout is read
    line by line as it comes, without Python's buffering hiding a line already received."""

    def __init__(self, argv: Sequence[str], stdin: int | None = subprocess.DEVNULL) -> None:
        self.proc = subprocess.Popen(
            list(argv),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=docker_env(),
            bufsize=0,
        )
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        self.buf = b""
        self.eof = False

    def line(self, timeout: float = 20) -> bytes:
        """The next line (with its newline), or what is left at EOF, or b"" on timeout."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf and not self.eof:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return b""
            data = os.read(self.fd, 65536)
            self.buf += data
            self.eof = not data
        line, sep, self.buf = self.buf.partition(b"\n")
        return line + sep

    def rest(self, timeout: float = 20) -> bytes:
        """Everything until EOF."""
        out = b""
        while line := self.line(timeout):
            out += line
        return out

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()

    def wait(self, timeout: float = 20) -> int:
        return self.proc.wait(timeout=timeout)

    def interrupt(self) -> int:
        """SIGINT, as a user's ^C; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.proc.args} did not stop on SIGINT") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> Streaming:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- a real terminal ------------------------------------------------------------------------
def run_in_pty(
    argv: Sequence[str], typed: bytes = b"", *, after: bytes = b"", timeout: float = 60
) -> tuple[int, bytes]:
    """Run ``argv`` on a fresh pseudo-terminal (as an interactive user would), type ``typed``
    once the output contains ``after`` (at once if empty), read until the program closes
    the terminal; returns (exit code, everything it wrote to the terminal)."""
    env = docker_env({"TERM": "xterm"})
    pid, fd = pty.fork()
    if pid == 0:  # child: exec at once
        try:
            os.execvpe(argv[0], list(argv), env)
        finally:
            os._exit(127)
    out = b""
    pending = typed
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if pending and after in out:
                os.write(fd, pending)
                pending = b""
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the program exited and closed the terminal
                break
            if not data:
                break
            out += data
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


# ---- docker-py ------------------------------------------------------------------------------
@contextlib.contextmanager
def client_on(engine: EngineHandle, path: str) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=host_of(engine, path), timeout=120)
    try:
        yield client
    finally:
        client.close()


# ---- raw HTTP -------------------------------------------------------------------------------
def raw_exchange(sock_path: Path, data: bytes, responses: int, timeout: float = 30) -> list[bytes]:
    """Write ``data`` in one sendall on a new connection and read ``responses`` complete
    HTTP/1.1 responses (Content-Length or chunked framing); each comes back whole."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(sock_path))
        sock.sendall(data)
        buf = b""
        found: list[bytes] = []
        while len(found) < responses:
            end = _response_end(buf)
            if end is not None:
                found.append(buf[:end])
                buf = buf[end:]
                continue
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
        return found


def _response_end(buf: bytes) -> int | None:
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = buf[:head_end].decode("latin-1").lower()
    body_start = head_end + 4
    length = re.search(r"\r\ncontent-length:\s*(\d+)", head)
    if length:
        end = body_start + int(length.group(1))
        return end if len(buf) >= end else None
    if re.search(r"\r\ntransfer-encoding:\s*chunked", head):
        pos = body_start
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(buf[pos:line_end].split(b";")[0], 16)
            if size == 0:  # then trailers, if any, and an empty line
                end = buf.find(b"\r\n\r\n", line_end)
                return end + 4 if end >= 0 else None
            pos = line_end + 2 + size + 2
            if len(buf) < pos:
                return None
    return body_start  # no body (204/304)


def http_parts(response: bytes) -> tuple[str, dict[str, str], bytes]:
    """(status line, headers lower-cased, body without chunked framing) of one whole
    response."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        body = _dechunk(body)
    return lines[0], headers, body


def _dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out, data = out + data[:size], data[size + 2 :]


@dataclass(frozen=True)
class Pushed:
    """An image in the engine's local registry, not in its image store."""

    ref: str  # <registry>/compat/<name>:x
    image_id: str


# ---- clean-up -------------------------------------------------------------------------------
@dataclass
class Made:
    """What a test created; removed (past the proxy) when it ends."""

    containers: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    def container(self, prefix: str = "compat") -> str:
        name = unique(prefix)
        self.containers.append(name)
        return name

    def image(self, prefix: str = "compat") -> str:
        ref = f"{unique(prefix)}:latest"
        self.images.append(ref)
        return ref

    def remove(self, engine: EngineHandle) -> None:
        for name in self.containers:
            sh(engine, "direct", "rm", "-f", "-v", name, check=False)
        for ref in self.images:
            sh(engine, "direct", "rmi", "-f", ref, check=False)
