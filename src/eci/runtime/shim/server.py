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
- the client holds a pipe open read-write (fd N) and writes `<half> <its pid> <N>\\n` to the
  FIFO `requests` (one write under PIPE_BUF: atomic among concurrent clients);
- the server forks; the child reads the client's exact argv from `/proc/<pid>/cmdline` (`bash
  eci-runtime-client SERVER_DIR BACKEND COMMAND ARGS…`: nothing to quote or escape; any other
  process gets no answer and its fd is never opened), then opens `/proc/<pid>/fd/<N>` (a pipe,
  or nothing is done) and runs the half in the client's cwd, so the command line means what it
  means to runc;
- the child writes its own pid to the pipe (the client watches that the worker lives), runs
  the half and writes the exit code. Errors go where runc logs (`--log`), where containerd
  reads them; the server's log gets a line per half with its duration. A client gone before
  its request is taken up gets nothing done; one gone before a prepare's answer gets its
  staging undone: nobody will run runc for it.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import stat
import sys
import time

from eci.errors import RuntimeShimError
from eci.runtime.linux.process import serve_until_signalled
from eci.runtime.shim import lifecycle
from eci.runtime.shim.config import RuntimeConfig
from eci.runtime.shim.userns import UsernsHandles

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

CLIENT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "eci-runtime-client"
)
HALVES = ("prepare", "cleanup")
#: ranges whose user namespace the server keeps made: the next ones allocation hands out
USERNS_MADE = 8
#: seconds between sweeps of the free id ranges, and the share of a core they may take (1/N)
SWEEP_INTERVAL = 10.0
SWEEP_SHARE = 20
#: seconds a stopping server gives the halves under way
WORKER_GRACE = 10.0
#: argv[0:5] of a client: bash, the client script, the server dir, the backend, the command
CLIENT_PREFIX = 5


def _preload() -> None:
    """Import everything a half imports, so a forked child imports nothing."""
    import ctypes  # noqa: F401
    import json  # noqa: F401

    from eci import auditfile  # noqa: F401
    from eci.runtime.linux import capabilities, libc, mounts  # noqa: F401
    from eci.runtime.shim import holders, spec, staging  # noqa: F401

    libc.handle()  # loaded once, here: every forked worker has it


def _make_userns_ahead(ranges_dir: str, resources: lifecycle.Resources) -> None:
    """Keep user namespaces made for the ranges allocation hands out next (least recently
    used first: see ranges.py), and only for them; a worker forked afterwards inherits them
    (see userns.py). A range not among them gets its own at create (a fork, ~2 ms)."""
    from eci.runtime.shim.ranges import RangeStore

    try:
        upcoming = RangeStore(ranges_dir, resources.pool()).upcoming(USERNS_MADE)
        resources.userns.keep_only(upcoming)
    except (OSError, RuntimeShimError) as exc:  # each create then makes its own
        sys.stderr.write(f"eci runtime server: no user namespaces made ahead: {exc}\n")


def _client_argv(pid: int) -> list[str]:
    """The runtime command line the client was given, or a ValueError."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = [a.decode("utf-8", "surrogateescape") for a in f.read().split(b"\0")[:-1]]
    if len(argv) < CLIENT_PREFIX or os.path.realpath(argv[1]) != os.path.realpath(CLIENT):
        raise ValueError(f"process {pid} is not an eci-runtime-client: {argv[:2]!r}")
    return argv[CLIENT_PREFIX:]


def _run_half(
    half: str,
    pid: int,
    argv: list[str],
    resources: lifecycle.Resources,
    locked: Callable[[], None],
) -> int:
    """Run `half` of client `pid`'s command line `argv`, in its cwd."""
    started = time.monotonic()
    try:
        os.chdir(os.readlink(f"/proc/{pid}/cwd"))
        code = lifecycle.main(argv, resources, half=half, locked=locked)
    except Exception as exc:  # the client's process is gone: refuse
        sys.stderr.write(f"eci runtime server: {half} for pid {pid}: {exc}\n")
        return 1
    elapsed = (time.monotonic() - started) * 1000
    container = argv[-1] if argv else "?"
    sys.stderr.write(f"{half} {container} (pid {pid}): exit {code} in {elapsed:.1f} ms\n")
    return code


def _reply_pipe(pid: int, fd: int) -> int | None:
    """A write end of client `pid`'s reply pipe; None when it is not a pipe."""
    try:
        out = os.open(
            f"/proc/{pid}/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        )
    except OSError:
        return None
    if stat.S_ISFIFO(os.fstat(out).st_mode):
        return out
    os.close(out)
    return None


def answer(half: str, pid: int, fd: int, resources: lifecycle.Resources) -> None:
    """In the forked worker: tell client `pid` who works for it, run the half, send the code.

    Nothing is done for a client that is gone, or is not an eci-runtime-client (whose fd is
    then never opened). A cleanup is taken up (the worker's pid sent) only once it holds the
    container's lock: a client that does not wait for the code may then go. A cleanup goes on
    if its client is gone; a prepare whose answer cannot be delivered is undone: nobody will
    run runc for it."""
    try:
        argv = _client_argv(pid)
    except FileNotFoundError:  # gone before its request was taken up
        return
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"eci runtime server: {half} for pid {pid}: {exc}\n")
        return
    out = _reply_pipe(pid, fd)
    if out is None:
        return
    taken_up = False

    def take_up() -> None:
        nonlocal taken_up
        if not taken_up:
            taken_up = True
            with contextlib.suppress(OSError):  # a client gone: the code cannot reach it either
                os.write(out, f"{os.getpid()}\n".encode())  # the client watches this worker

    try:
        if half == "prepare":
            take_up()
        code = _run_half(half, pid, argv, resources, take_up)
        take_up()  # a cleanup refused before it locked anything
        try:
            os.write(out, f"{code}\n".encode())
        except OSError:  # the client is gone (a cleanup's client need not wait)
            if half == "prepare" and code == 0:
                lifecycle.main(argv, resources, half="cleanup")
    finally:
        os.close(out)


def _dispatch(line: bytes, listening: int, resources: lifecycle.Resources) -> int | None:
    """Fork a worker for a request line; its pid (None: not a request)."""
    fields = line.decode("ascii", "replace").split(" ")
    half, pid, fd = fields if len(fields) == 3 else ("", "", "")
    if half not in HALVES or not pid.isdigit() or not fd.isdigit():
        sys.stderr.write(f"eci runtime server: ignoring request {line[:80]!r}\n")
        return None
    return _fork(lambda: answer(half, int(pid), int(fd), resources), listening, f"{half} {pid}")


def _fork(work: Callable[[], None], listening: int, what: str) -> int:
    """A child running `work` with default signals and without the request FIFO; its pid."""
    worker = os.fork()
    if worker == 0:
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.close(listening)
            work()
        except BaseException as exc:  # a bug: the client sees the worker die and cleans up
            sys.stderr.write(f"eci runtime server: worker for {what}: {exc!r}\n")
        finally:
            os._exit(0)
    return worker


class _FreeRangeSweeps:
    """Sweeps of every free id range (ranges.RangeStore.sweep_free), forked every
    SWEEP_INTERVAL seconds, or less often when they take long: at most 1/SWEEP_SHARE of a
    core. A process that gains a free range's ids after the range's release is thus killed
    within about that long, instead of at the range's next release."""

    def __init__(
        self, config: RuntimeConfig, resources: lifecycle.Resources, listening: int
    ) -> None:
        self.config = config
        self.resources = resources
        self.listening = listening
        self.pid: int | None = None
        self.started = 0.0
        self.next = time.monotonic() + SWEEP_INTERVAL

    def due_in(self) -> float:
        return max(0.0, self.next - time.monotonic())

    def tick(self) -> int | None:
        """Start a sweep when one is due and none runs; its pid."""
        now = time.monotonic()
        if self.pid is not None:
            if _running(self.pid):
                return None
            self.next = self.started + max(SWEEP_INTERVAL, (now - self.started) * SWEEP_SHARE)
            self.pid = None
        if now < self.next:
            return None
        self.started, self.pid = now, _fork(self._sweep, self.listening, "free-range sweep")
        return self.pid

    def _sweep(self) -> None:
        why = "background sweep of free ranges"
        config, resources = self.config, self.resources
        store = lifecycle.range_store(
            config.ranges_dir, config.audit_log, resources.pool(), why, resources.log_to
        )
        if os.path.exists(os.path.join(self.config.ranges_dir, "queue")):
            store.sweep_free()


def _running(pid: int) -> bool:
    """Is worker `pid` still at work (finished workers are reaped at once: SIGCHLD ignored)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _await_workers(workers: set[int], timeout: float = WORKER_GRACE) -> None:
    """Let the halves under way finish (a cleanup's client does not wait for it)."""
    deadline = time.monotonic() + timeout
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.01)


def serve(state_dir: str) -> int:
    """Serve until SIGTERM: `<serverDir>/pid` appears once requests are read."""
    config = RuntimeConfig.load(state_dir)
    directory = config.server_dir
    if not directory:
        sys.stderr.write("eci runtime server: runtime.conf has no serverDir\n")
        return 1
    _preload()
    resources = lifecycle.Resources(UsernsHandles(), log_to=sys.stderr)
    _make_userns_ahead(config.ranges_dir, resources)
    requests = os.path.join(directory, "requests")
    pid_file = os.path.join(directory, "pid")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    for path in (requests, pid_file):
        if os.path.lexists(path):
            os.unlink(path)
    os.mkfifo(requests, 0o600)
    listening = os.open(requests, os.O_RDWR | os.O_CLOEXEC)  # never sees EOF
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reap themselves
    pending = b""
    workers: set[int] = set()
    sweeps = _FreeRangeSweeps(config, resources, listening)
    try:
        with serve_until_signalled(pid_file):
            while True:
                if select.select([listening], [], [], sweeps.due_in())[0]:
                    pending += os.read(listening, 4096)
                    *lines, pending = pending.split(b"\n")
                    pending = pending[-4096:]  # a request is one short line
                    workers = {pid for pid in workers if _running(pid)}
                    for line in lines:
                        if (worker := _dispatch(line, listening, resources)) is not None:
                            workers.add(worker)
                    _make_userns_ahead(config.ranges_dir, resources)  # for the next creates
                if (sweep := sweeps.tick()) is not None:
                    workers.add(sweep)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(requests)
        _await_workers(workers)
        resources.userns.close()
