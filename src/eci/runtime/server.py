"""The runtime server: create's and delete's eci halves, run by a process that has already
paid for the interpreter and the imports.

A fresh `python3 -I -S` costs ~10 ms to start and ~20 ms to import what `create` needs, on
every container start and again on its delete. `eci up` starts this server once; the
dispatcher (`eci-runtime` → `eci-runtime-client`) then asks it, through a FIFO, to run
`main`'s "prepare" (create without runc) or "cleanup" (after runc's delete or a failed
create) in a forked child. runc itself still runs in the client, with containerd's stdio and
fds. Without a running server the dispatcher runs the same code in a fresh interpreter: the
server changes the speed of a start, never what is checked.

Protocol, all under the root-only `serverDir` of runtime.conf:
- the client makes the FIFO `replies/<its pid>` and writes `<half> <its pid>\\n` to the FIFO
  `requests` (one write under PIPE_BUF: atomic among concurrent clients);
- the server forks; the child reads the client's exact argv from `/proc/<pid>/cmdline`
  (`bash eci-runtime-client SERVER_DIR BACKEND COMMAND ARGS…`: nothing to quote or escape) and runs
  in its cwd, so the command line means what it means to runc;
- the child removes `replies/<pid>`, writes its own pid to it (the client watches that the
  worker lives), runs the half and writes the exit code. Errors go where runc logs (`--log`),
  where containerd reads them; the server's log gets a line per half with its duration. A
  client gone before its request is taken up gets nothing done; one gone before a prepare's
  answer gets its staging undone: nobody will run runc for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from eci.runtime import main as shim
from eci.runtime.process import serve_until_signalled

CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "eci-runtime-client")
HALVES = ("prepare", "cleanup")
#: argv[0:5] of a client: bash, the client script, the server dir, the backend, the command
CLIENT_PREFIX = 5


def _preload() -> None:
    """Import everything a half imports, so a forked child imports nothing."""
    import ctypes  # noqa: F401
    import json  # noqa: F401

    from eci.runtime import capabilities, mounts, spec, staging  # noqa: F401


def _client_argv(pid: int) -> list[str]:
    """The runtime command line the client was given, or a ValueError."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = [a.decode("utf-8", "surrogateescape") for a in f.read().split(b"\0")[:-1]]
    if len(argv) < CLIENT_PREFIX or os.path.realpath(argv[1]) != os.path.realpath(CLIENT):
        raise ValueError(f"process {pid} is not an eci-runtime-client: {argv[:2]!r}")
    return argv[CLIENT_PREFIX:]


def _run_half(half: str, pid: int) -> tuple[int, list[str] | None]:
    """Run `half` of client `pid`'s command line, in its cwd; (exit code, its argv)."""
    argv = None
    started = time.monotonic()
    try:
        argv = _client_argv(pid)
        os.chdir(os.readlink(f"/proc/{pid}/cwd"))
        code = shim.main(argv, half=half)
    except Exception as exc:  # the client's process is gone or not ours: refuse
        sys.stderr.write(f"eci runtime server: {half} for pid {pid}: {exc}\n")
        return 1, None
    container = argv[-1] if argv else "?"
    elapsed = (time.monotonic() - started) * 1000
    sys.stderr.write(f"{half} {container} (pid {pid}): exit {code} in {elapsed:.1f} ms\n")
    return code, argv


def answer(half: str, pid: int, directory: str) -> None:
    """In the forked worker: tell client `pid` who works for it, run the half, send the code.

    The client holds its reply FIFO open: if opening it fails, the client is gone before its
    request was taken up, and nothing is done. A prepare whose answer cannot be delivered is
    undone: nobody will run runc for it."""
    reply = os.path.join(directory, "replies", str(pid))
    try:
        out = os.open(reply, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    finally:
        with contextlib.suppress(OSError):
            os.unlink(reply)
    try:
        os.write(out, f"{os.getpid()}\n".encode())  # the client watches this worker
        code, argv = _run_half(half, pid)
        try:
            os.write(out, f"{code}\n".encode())
        except OSError:
            if half == "prepare" and code == 0 and argv is not None:
                shim.main(argv, half="cleanup")
    finally:
        os.close(out)


def _dispatch(line: bytes, directory: str, listening: int) -> None:
    half, _, pid = line.decode("ascii", "replace").partition(" ")
    if half not in HALVES or not pid.isdigit():
        sys.stderr.write(f"eci runtime server: ignoring request {line[:80]!r}\n")
        return
    if os.fork() == 0:
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.close(listening)
            answer(half, int(pid), directory)
        except BaseException as exc:  # a bug: the client sees the worker die and cleans up
            sys.stderr.write(f"eci runtime server: worker for {half} {pid}: {exc!r}\n")
        finally:
            os._exit(0)


def serve(state_dir: str) -> int:
    """Serve until SIGTERM: `<serverDir>/pid` appears once requests are read."""
    config = shim.RuntimeConfig.load(state_dir)
    directory = config.server_dir
    if not directory:
        sys.stderr.write("eci runtime server: runtime.conf has no serverDir\n")
        return 1
    _preload()
    requests = os.path.join(directory, "requests")
    pid_file = os.path.join(directory, "pid")
    os.makedirs(os.path.join(directory, "replies"), mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    for name in os.listdir(os.path.join(directory, "replies")):  # clients of an earlier server
        os.unlink(os.path.join(directory, "replies", name))
    for path in (requests, pid_file):
        if os.path.lexists(path):
            os.unlink(path)
    os.mkfifo(requests, 0o600)
    listening = os.open(requests, os.O_RDWR | os.O_CLOEXEC)  # never sees EOF
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reap themselves
    pending = b""
    try:
        with serve_until_signalled(pid_file):
            while True:
                pending += os.read(listening, 4096)
                *lines, pending = pending.split(b"\n")
                pending = pending[-4096:]  # a request is one short line
                for line in lines:
                    _dispatch(line, directory, listening)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(requests)
