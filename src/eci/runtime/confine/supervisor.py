"""The mount supervisor: vets every mount(2)/umount2(2) of a container (seccomp user notification).

Theory of operation: the spec rewrite (`spec.supervise_syscalls`) makes mount, umount2 (and
sysinfo, see `sysinfo.py`) notify a listener and names this supervisor's socket as runc's
`listenerPath`. When a container process is set up, runc connects and sends the container's
state with the listener fd (SCM_RIGHTS). If nobody listens, runc fails the start: no container
runs unsupervised.

For each listener the supervisor forks a *keeper*: a child that only holds a copy of the fd
until the container's last task is gone (POLLHUP) and is recorded in `keepers/<pid>`. A new
supervisor takes every listener back from its keeper (pidfd_getfd), so a supervisor restart
loses no running container's rules; calls made meanwhile wait for it.

For each call a forked *helper* first moves itself into every cgroup of the caller
(`charge.py`: the container pays for it, in CPU, memory and pids, and is frozen with it), then
joins the caller's user and mount namespaces, takes its root and cwd, opens the paths once,
asks `mountguard.Guard` and, if allowed, performs the call on the opened fds
(`/proc/self/fd/N` of the helper): what was checked is what is mounted. Its exit code is the
errno the caller gets. A sysinfo(2) is answered by a helper too (it writes into the caller's
memory, which a container can make block). At most `MAX_HELPERS` work for one container at a
time: while it has that many, the supervisor stops reading its listeners and its further
calls wait in the kernel, so one container never holds up another's. A helper still working
after `HELPER_TIMEOUT` is killed (with its child: a process group) and the call fails with
ETIMEDOUT. The protected identities of a container are in
`containers/<id>/protected` (one per line), written at its first process and appended to when
a fresh procfs gets masked: a restarted supervisor reads the same rules.
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import json
import os
import select
import selectors
import signal
import socket
import sys
import time

from eci.errors import SyscallRefused
from eci.runtime.confine import charge, mountguard, seccomp, sysinfo
from eci.runtime.confine.enter import NAMESPACES
from eci.runtime.confine.mountguard import Guard, Place
from eci.runtime.linux import libc, mounts
from eci.runtime.linux.capabilities import capability_set
from eci.runtime.linux.constants import (
    MNT_DETACH,
    MS_BIND,
    MS_MOVE,
    MS_NOSYMFOLLOW,
    MS_PROPAGATION,
    MS_RDONLY,
    MS_REMOUNT,
    UMOUNT_NOFOLLOW,
)
from eci.runtime.linux.process import serve_until_signalled, start_ticks, write_atomic
from eci.runtime.shim.invocation import valid_container_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

LISTENER = "listener.sock"
NULL_DEVICE = os.makedev(1, 3)
#: paths naming the caller's own /proc entries ("self" would be the helper): its fds (taken
#: with pidfd_getfd) and its executable are opened beforehand; any other such path is
#: resolved as container root, where "self" is the helper and grants nothing
OWN_PROC = ("/proc/self/", "/proc/thread-self/")
#: a helper that crashed answers this: fail closed
HELPER_FAILED = 255
#: helpers working at once for one container; its further calls wait in the kernel
MAX_HELPERS = 3
#: seconds a helper may work (a stuck FUSE daemon of the container, its frozen cgroup) before
#: it is killed and its call fails with ETIMEDOUT
HELPER_TIMEOUT = 30.0


def _log(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} {message}\n")


# --- keepers: a listener outlives the supervisor ---


def _keep(fd: int) -> None:
    """In a forked keeper: hold `fd` until the filter has no tasks left, then exit."""
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.closerange(0, fd)
        os.closerange(fd + 1, 65536)
        poller = select.poll()
        poller.register(fd, 0)  # POLLHUP/POLLERR only: notifications are not ours to take
        while not poller.poll():
            pass
    finally:
        os._exit(0)


class _Helper:
    """A helper at work: for which call of which container, until when."""

    __slots__ = ("answered", "container_id", "deadline", "listener", "notif_id", "pid")

    def __init__(self, listener: int, notif_id: int, pid: int, container_id: str) -> None:
        self.listener, self.notif_id, self.pid = listener, notif_id, pid
        self.container_id = container_id
        self.deadline = time.monotonic() + HELPER_TIMEOUT
        #: timed out and answered already
        self.answered = False


class Supervisor:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.keepers_dir = os.path.join(directory, "keepers")
        self.containers_dir = os.path.join(directory, "containers")
        self.selector = selectors.DefaultSelector()
        #: listener fd -> (container id, keeper pid)
        self.listeners: dict[int, tuple[str, int]] = {}
        #: helper pidfd -> the helper
        self.helpers: dict[int, _Helper] = {}
        #: container id -> its helpers at work
        self.busy: dict[str, int] = {}
        #: containers with MAX_HELPERS at work: their listeners are not read meanwhile
        self.held: set[str] = set()
        #: hierarchy -> mount point of the host's cgroup hierarchies, where helpers are charged
        self.cgroup_mounts: dict[str, str] = {}
        #: keepers whose container is gone: reaped as soon as they have exited
        self.exited_keepers: set[int] = set()

    # -- setup --

    def start(self) -> socket.socket:
        for path in (self.keepers_dir, self.containers_dir):
            os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(self.directory, 0o700)
        self.cgroup_mounts = charge.host_mount_points()
        self._adopt_keepers()
        path = os.path.join(self.directory, LISTENER)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        os.chmod(path, 0o600)
        server.listen(128)
        self.selector.register(server, selectors.EVENT_READ, "accept")
        return server

    def _adopt_keepers(self) -> None:
        """Take back the listeners a previous supervisor left with its keepers."""
        for name in os.listdir(self.keepers_dir):
            path = os.path.join(self.keepers_dir, name)
            try:
                with open(path) as f:
                    container_id, fd_text, started = f.read().split()
                pid = int(name)
                if str(start_ticks(pid)) != started:
                    raise ProcessLookupError(pid)
                pidfd = os.pidfd_open(pid)
                try:
                    fd = seccomp.pidfd_getfd(pidfd, int(fd_text))
                finally:
                    os.close(pidfd)
            except (OSError, ValueError) as exc:
                _log(f"keeper {name}: gone ({exc}); forgetting it")
                with contextlib.suppress(OSError):
                    os.unlink(path)
                continue
            self._watch(fd, container_id, pid)
            _log(f"adopted listener of {container_id} from keeper {pid}")

    def _watch(self, fd: int, container_id: str, keeper: int) -> None:
        self.listeners[fd] = (container_id, keeper)
        if container_id not in self.held:  # else: once a helper of the container is done
            self.selector.register(fd, selectors.EVENT_READ, "notify")

    # -- registration (runc's listenerPath protocol) --

    def accept(self, server: socket.socket) -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            fds = array.array("i")
            try:
                state = _receive_state(conn, fds)
                container_id = str(state["state"]["id"])
                pid = int(state["pid"])
                if len(fds) != 1:
                    raise ValueError(f"expected one listener fd, got {len(fds)}")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                _log(f"refused a registration: {exc}")
                for fd in fds:
                    os.close(fd)
                return
            self.register(fds[0], container_id, pid, int(state["state"].get("pid") or 0))

    def register(self, fd: int, container_id: str, pid: int, init_pid: int) -> None:
        """A container's first process (its init) fixes what is protected; an exec joins."""
        if not valid_container_id(container_id):
            _log(f"refused a registration for container id {container_id!r}")
            os.close(fd)
            return
        directory = os.path.join(self.containers_dir, container_id)
        protected = os.path.join(directory, "protected")
        try:
            if pid == init_pid or not os.path.exists(protected):
                with open(f"/proc/{pid}/mountinfo") as f:
                    entries = mountguard.parse_mountinfo(f.read())
                os.makedirs(directory, mode=0o700, exist_ok=True)
                identities = sorted(mountguard.identities(entries))
                write_atomic(protected, "".join(f"{i}\n" for i in identities))
            with open(os.path.join(directory, "init"), "w") as f:
                f.write(f"{init_pid or pid}\n")
        except OSError as exc:  # gone already: its calls fail with ENOSYS once fd is closed
            _log(f"could not register {container_id} pid {pid}: {exc}")
            os.close(fd)
            return
        keeper = os.fork()
        if keeper == 0:
            _keep(fd)
        started = start_ticks(keeper) or 0
        path = os.path.join(self.keepers_dir, str(keeper))
        write_atomic(path, f"{container_id} {fd} {started}\n")
        self._watch(fd, container_id, keeper)
        _log(f"registered {container_id} pid {pid} (keeper {keeper})")

    # -- notifications --

    def notified(self, fd: int) -> None:
        if fd not in self.listeners or self.listeners[fd][0] in self.held:
            return  # held since select() returned it: the call waits in the kernel
        try:
            notif = seccomp.receive(fd)
        except OSError as exc:
            if _hung_up(fd):  # the container's last task is gone (selectors hides EPOLLHUP)
                self._forget(fd)
            elif exc.errno not in (errno.ENOENT, errno.EINTR, errno.EAGAIN):
                _log(f"listener of {self.listeners[fd][0]}: {exc}")
            return  # else: the caller is gone meanwhile
        container_id, _ = self.listeners[fd]
        directory = os.path.join(self.containers_dir, container_id)
        try:
            pid = os.fork()
        except OSError as exc:  # out of processes or memory: the call fails, nothing waits
            _log(f"no helper for {container_id} pid {notif.pid}: {exc}")
            with contextlib.suppress(OSError):
                seccomp.respond(fd, notif.id, errno.EAGAIN)
            return
        if pid == 0:  # the helper: it ends in _exit_answering, whatever happens
            _exit_answering(
                lambda: _serve(fd, notif, directory, self.cgroup_mounts),
                f"helper for {container_id} pid {notif.pid}",
            )
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            os.kill(pid, signal.SIGKILL)  # our unreaped child: the pid is still its own
            os.waitpid(pid, 0)
            with contextlib.suppress(OSError):
                seccomp.respond(fd, notif.id, errno.EAGAIN)
            raise
        self.helpers[pidfd] = _Helper(fd, notif.id, pid, container_id)
        self.selector.register(pidfd, selectors.EVENT_READ, "helper")
        self.busy[container_id] = self.busy.get(container_id, 0) + 1
        if self.busy[container_id] >= MAX_HELPERS:
            self._hold(container_id, True)

    def helped(self, pidfd: int) -> None:
        helper = self.helpers.pop(pidfd)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(helper.pid, 0)
        error = _answer_of(os.waitstatus_to_exitcode(status))
        if not helper.answered:
            with contextlib.suppress(OSError):  # the caller may be gone meanwhile
                seccomp.respond(helper.listener, helper.notif_id, error)
        container_id = helper.container_id
        self.busy[container_id] -= 1
        if not self.busy[container_id]:
            del self.busy[container_id]
        if container_id in self.held:
            self._hold(container_id, False)

    def _hold(self, container_id: str, hold: bool) -> None:
        """Stop (or go back to) reading the listeners of a container: while held, its calls
        wait in the kernel, in the order they were made."""
        for fd, (owner, _) in self.listeners.items():
            if owner == container_id:
                if hold:
                    self.selector.unregister(fd)
                else:
                    self.selector.register(fd, selectors.EVENT_READ, "notify")
        if hold:
            self.held.add(container_id)
        else:
            self.held.discard(container_id)

    def _expire(self) -> float | None:
        """Kill the helpers past their deadline and fail their calls; seconds until the next
        deadline (None: no helper at work)."""
        now = time.monotonic()
        pending = [h for h in self.helpers.values() if not h.answered]
        for helper in pending:
            if helper.deadline > now:
                continue
            helper.answered = True
            _log(f"helper {helper.pid} for {helper.container_id} timed out; killed")
            with contextlib.suppress(ProcessLookupError):  # its group: unreaped, still its own
                os.killpg(helper.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                seccomp.respond(helper.listener, helper.notif_id, errno.ETIMEDOUT)
        deadlines = [h.deadline - now for h in pending if not h.answered]
        return max(0.0, min(deadlines)) if deadlines else None

    def _forget(self, fd: int) -> None:
        container_id, keeper = self.listeners.pop(fd)
        self.selector.unregister(fd)
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.keepers_dir, str(keeper)))
        self.exited_keepers.add(keeper)
        if container_id not in {c for c, _ in self.listeners.values()}:
            directory = os.path.join(self.containers_dir, container_id)
            for name in ("protected", "init"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(directory, name))
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        _log(f"released a listener of {container_id}")

    def run(self, server: socket.socket) -> None:
        while True:
            timeout = self._expire()
            if self.exited_keepers:
                timeout = min(timeout, 1.0) if timeout is not None else 1.0
            for key, _ in self.selector.select(timeout=timeout):
                try:
                    self._ready(key, server)
                except Exception as exc:  # one call's failure (EMFILE, fork) stops no other
                    _log(f"supervisor: {key.data} on fd {key.fd}: {exc!r}")
            self._reap()

    def _ready(self, key: selectors.SelectorKey, server: socket.socket) -> None:
        if key.data == "accept":
            self.accept(server)
        elif key.data == "helper":
            self.helped(key.fd)
        else:
            self.notified(key.fd)

    def _reap(self) -> None:
        for pid in list(self.exited_keepers):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not ours (adopted from an earlier supervisor)
                done = pid
            if done:
                self.exited_keepers.discard(pid)


def _receive_state(conn: socket.socket, fds: array.array[int]) -> Any:
    """runc's state of the container (JSON, till EOF); the fds it sends (SCM_RIGHTS) are
    added to `fds`, to be closed if the registration is refused."""
    msg, ancdata, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(4 * 4))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % 4])
    data = msg
    while msg:
        msg = conn.recv(1 << 16)
        data += msg
    return json.loads(data)


def _hung_up(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, 0)
    return any(events & select.POLLHUP for _, events in poller.poll(0))


# --- the helper: one call, checked and performed inside the caller's namespaces ---
#
# A helper answers one call in steps, each its own function: read the call (its arguments, its
# strings from the caller's memory), open the caller's paths, enter its namespaces, then, in a
# child (the pid namespace is its children's), perform it: one handler per syscall (`_mount`,
# `_umount`; sysinfo is `sysinfo.answer`), as sysbox-fs does. A step that refuses raises
# `SyscallRefused`; `_exit_answering`, where the helper and its child end, turns it into the exit
# code, which is the caller's errno. Anything else is a bug: the call fails with EPERM.


def _exit_answering(work: Callable[[], int], who: str) -> NoReturn:
    """End a forked helper (or its child) with the caller's errno as exit code: what `work`
    returns, the errno it was refused with, or HELPER_FAILED for anything else."""
    code = HELPER_FAILED
    try:
        code = work()
    except SyscallRefused as refused:
        code = refused.errno
        if refused.why:
            _log(refused.why)
    except BaseException as exc:  # a bug: the call fails, nothing is done
        _log(f"{who}: {exc!r}")
    finally:
        os._exit(code)


def _answer_of(exit_code: int) -> int:
    """The errno a helper's exit code (`waitstatus_to_exitcode`) answers: a helper that
    crashed, or was killed by a signal, fails its call closed."""
    return exit_code if 0 <= exit_code < HELPER_FAILED else errno.EPERM


def _in_child(work: Callable[[], int], who: str) -> int:
    """Do `work` in a child (joining the pid namespace takes one); its answer."""
    child = os.fork()
    if child == 0:
        _exit_answering(work, who)
    _, status = os.waitpid(child, 0)
    return _answer_of(os.waitstatus_to_exitcode(status))


def _serve(
    listener: int, notif: seccomp.Notification, container_dir: str, cgroup_mounts: dict[str, str]
) -> int:
    """In a forked helper: charged to the caller's cgroups, answer one call; the caller's
    errno (0: done)."""
    os.setpgid(0, 0)  # killed with its child in the caller's pid namespace if timed out
    if notif.syscall is None:
        raise SyscallRefused(errno.EPERM)
    proc = os.open(f"/proc/{notif.pid}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    if not seccomp.is_valid(listener, notif.id):  # opened the right process, not a reused pid
        raise SyscallRefused(errno.ESRCH)
    try:
        charge.join(proc, cgroup_mounts)
    except OSError as exc:  # never work for a container uncharged
        why = f"cannot charge a helper to the cgroups of pid {notif.pid}: {exc}"
        raise SyscallRefused(errno.EPERM, why) from exc
    if notif.syscall == "sysinfo":
        return sysinfo.answer(listener, notif, container_dir)
    return _help(notif, container_dir, proc)


def _help(notif: seccomp.Notification, container_dir: str, proc: int) -> int:
    """Vet and perform one mount or umount of the process `proc` (an O_PATH fd on its /proc
    entry, checked to be the caller's); 0 once done."""
    call = _read_call(notif, proc)
    caller = _open_caller(proc, call, container_dir)
    late = _enter_namespaces(proc, call)
    return _in_child(lambda: _perform(caller, call, late), f"helper for {call}")


# -- read the call --


class _Call:
    """One mount(2) or umount2(2) as the caller made it (its strings read from its memory)."""

    __slots__ = ("data", "flags", "fstype", "pid", "source", "syscall", "target")

    def __init__(
        self,
        syscall: str,
        pid: int,
        source: str | None,
        target: str,
        fstype: str | None,
        flags: int,
        data: bytes | None,
    ) -> None:
        self.syscall, self.pid, self.source, self.target = syscall, pid, source, target
        self.fstype, self.flags, self.data = fstype, flags, data

    def __str__(self) -> str:
        return (
            f"{self.syscall} {self.source!r} {self.target!r} {self.fstype!r} {self.flags:#x} "
            f"for pid {self.pid}"
        )

    @property
    def takes_source(self) -> bool:
        """A bind or a move: its source is a path, opened and checked like the target."""
        moves = self.flags & (MS_BIND | MS_MOVE)
        return bool(moves) and not self.flags & (MS_REMOUNT | MS_PROPAGATION)

    @property
    def made_as_host(self) -> bool:
        """A fresh procfs or sysfs: made (detached) as host root. From inside a user namespace
        the kernel wants one already "fully visible", and the container's are masked (by eci,
        on purpose). Only these two types, whose owner is the namespace's and not the
        mounter's; attached and masked as container root (`_virtualize_fresh`), like every
        other call."""
        if self.syscall != "mount" or self.fstype not in mountguard.FRESH_MASKS:
            return False
        return mountguard.mount_kind(self.flags) == mountguard.NEW


def _read_call(notif: seccomp.Notification, proc: int) -> _Call:
    """The call of the process `proc`, its arguments read from its memory."""
    assert notif.syscall is not None
    if not _cap_sys_admin(proc):
        raise SyscallRefused(errno.EPERM)
    mem = os.open("mem", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
    try:
        return _READERS[notif.syscall](mem, notif)
    except OSError as exc:
        raise SyscallRefused(exc.errno or errno.EFAULT) from exc
    finally:
        os.close(mem)


def _cap_sys_admin(proc: int) -> bool:
    fd = os.open("status", os.O_RDONLY, dir_fd=proc)
    with os.fdopen(fd) as f:
        return "CAP_SYS_ADMIN" in capability_set(f.read(), "CapEff")


def _read_mount(mem: int, notif: seccomp.Notification) -> _Call:
    args = notif.args
    source, target = seccomp.read_string(mem, args[0]), seccomp.read_string(mem, args[1])
    fstype = seccomp.read_string(mem, args[2])
    flags = mountguard.effective_flags(args[3] & 0xFFFFFFFF)
    data = _read_data(mem, args[4])
    return _Call("mount", notif.pid, source, _target(target), fstype, flags, data)


def _read_umount2(mem: int, notif: seccomp.Notification) -> _Call:
    target, flags = seccomp.read_string(mem, notif.args[0]), notif.args[1] & 0xFFFFFFFF
    return _Call("umount2", notif.pid, None, _target(target), None, flags, None)


def _read_umount(mem: int, notif: seccomp.Notification) -> _Call:
    """i386's umount(2): umount2 without flags."""
    target = seccomp.read_string(mem, notif.args[0])
    return _Call("umount", notif.pid, None, _target(target), None, 0, None)


#: syscall -> how its arguments are read
_READERS: dict[str, Callable[[int, seccomp.Notification], _Call]] = {
    "mount": _read_mount,
    "umount2": _read_umount2,
    "umount": _read_umount,
}


def _read_data(mem: int, address: int) -> bytes | None:
    """mount(2)'s data: a string for the filesystems a container can mount."""
    text = seccomp.read_string(mem, address)
    return None if text is None else text.encode("utf-8", "surrogateescape")


def _target(path: str | None) -> str:
    """Every call names a target: a NULL one is the caller's fault."""
    if path is None:
        raise SyscallRefused(errno.EFAULT)
    return path


# -- open the caller's paths --


class _Caller:
    """The caller's process as opened from the host, before entering its namespaces."""

    __slots__ = ("cwd", "host_proc", "own", "proc", "record", "root")

    def __init__(self, proc: int, record: int, host_proc: int, root: int, cwd: int) -> None:
        #: its /proc entry; the host's procfs ("self" there names the helper's child)
        self.proc, self.host_proc = proc, host_proc
        #: the container's protected identities, read and appended to under a lock
        self.record = record
        self.root, self.cwd = root, cwd
        #: its own /proc entries its paths name (`OWN_PROC`) -> their fds
        self.own: dict[str, int] = {}


def _open_caller(proc: int, call: _Call, container_dir: str) -> _Caller:
    protected = os.path.join(container_dir, "protected")
    caller = _Caller(
        proc,
        os.open(protected, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC),
        os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC),
        os.open("root", os.O_PATH | os.O_CLOEXEC, dir_fd=proc),
        os.open("cwd", os.O_PATH | os.O_CLOEXEC, dir_fd=proc),
    )
    for path in (call.source, call.target):
        if path is None or (entry := _own_entry(path)) is None:
            continue
        try:
            caller.own[path] = _open_own(proc, call.pid, entry)
        except OSError as exc:
            raise SyscallRefused(exc.errno or errno.ENOENT) from exc
    return caller


def _own_entry(path: str) -> str | None:
    """Which of the caller's own /proc entries `path` names ("fd/N": an fd it holds already,
    "exe": the binary it runs, which runc binds a copy of), if one of those."""
    if not path.startswith(OWN_PROC):
        return None
    rest = path.split("/", 3)[3]
    if rest == "exe" or (rest.startswith("fd/") and rest[3:].isdigit()):
        return rest
    return None


def _open_own(proc: int, pid: int, entry: str) -> int:
    if entry == "exe":
        return os.open("exe", os.O_PATH | os.O_CLOEXEC, dir_fd=proc)
    pidfd = os.pidfd_open(pid)
    try:
        return seccomp.pidfd_getfd(pidfd, int(entry[3:]))
    finally:
        os.close(pidfd)


# -- enter its namespaces --


def _enter_namespaces(proc: int, call: _Call) -> list[tuple[int, int]]:
    """Join all of the caller's namespaces (a procfs, sysfs, mqueue or cgroup mount belongs to
    the mounter's); its pid namespace is joined by the next child. For a fresh procfs or
    sysfs, made detached in the host's mount namespace where nothing is too revealing, its
    mount and user namespaces are only opened: `(fd, kind)` to join once it is made."""
    as_host = call.made_as_host
    late = []
    if as_host:
        late = [
            (_open_namespace(proc, name), kind) for name, kind in (NAMESPACES[0], NAMESPACES[-1])
        ]
    for name, kind in NAMESPACES[1:-1] if as_host else NAMESPACES:
        _join(proc, call.pid, name, kind)
    return late


def _open_namespace(proc: int, name: str) -> int:
    return os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)


def _join(proc: int, pid: int, name: str, kind: int) -> None:
    ns = _open_namespace(proc, name)
    try:
        mounts.setns(ns, kind)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: it is ours already
            why = f"cannot join {name} of pid {pid}: {exc}"
            raise SyscallRefused(exc.errno or errno.EPERM, why) from exc
    finally:
        os.close(ns)


# -- perform it: one handler per syscall --


def _perform(caller: _Caller, call: _Call, late: list[tuple[int, int]]) -> int:
    """In the helper's child, in the caller's namespaces, as root in its root and cwd, one
    call of the container at a time: check the call, then make it; 0 once done."""
    # "self" in the host's procfs names this process as the host sees it
    own_fds = os.open("self/fd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=caller.host_proc)
    fresh = _mount_fresh(call, late) if late else None
    with contextlib.suppress(OSError):
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    os.fchdir(caller.root)
    os.chroot(".")
    os.fchdir(caller.cwd)
    opened = _Opened(caller.proc, caller.own, caller.cwd, own_fds)
    fcntl.flock(caller.record, fcntl.LOCK_EX)  # one call of a container at a time, check to act
    protected = set(os.pread(caller.record, 1 << 24, 0).decode().splitlines())
    try:
        if call.syscall == "mount":
            _mount(opened, call, protected, caller.record, fresh)
        else:
            _umount(opened, call, protected)
    except OSError as exc:
        raise SyscallRefused(exc.errno or errno.EPERM, f"{call}: {exc}") from exc
    return 0


def _mount_fresh(call: _Call, late: list[tuple[int, int]]) -> int:
    """Make the fresh procfs or sysfs (detached, as host root), then join the caller's mount
    and user namespaces: container root, as for every other call."""
    assert call.fstype is not None
    options = None if call.data is None else call.data.decode("utf-8", "surrogateescape")
    fresh = mounts.fresh_mount(call.fstype, call.flags, options)
    for ns, kind in late:
        mounts.setns(ns, kind)
    return fresh


class _Opened:
    """The paths of one call, opened inside the caller's root and cwd."""

    def __init__(self, proc: int, own: dict[str, int], cwd: int, own_fds: int) -> None:
        self.proc = proc
        self.own = own
        self.cwd = cwd
        self.own_fds = own_fds
        self.fds: list[int] = []
        #: fds opened below a fresh procfs -> their names there
        self.names: dict[int, str] = {}

    def open(self, path: str, follow: bool = True) -> int:
        """`/proc/self/…` (and thread-self) were opened as the caller's, beforehand."""
        if path in self.own:
            fd = os.dup(self.own[path])
        else:
            flags = os.O_PATH | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
            fd = os.open(path, flags)
        self.fds.append(fd)
        return fd

    def close(self, keep: int | None = None) -> None:
        """Close what was opened (an fd on a mount keeps it busy for umount2)."""
        for fd in self.fds:
            if fd != keep:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.fds = [keep] if keep is not None else []

    def entries(self) -> dict[int, mountguard.MountEntry]:
        fd = os.open("mountinfo", os.O_RDONLY, dir_fd=self.proc)
        with os.fdopen(fd) as f:
            return mountguard.parse_mountinfo(f.read())

    def place(self, fd: int, entries: dict[int, mountguard.MountEntry]) -> Place:
        """Where an opened fd lies. A mount the caller's table does not show (outside its root,
        reached through its cwd or an fd kept from before a chroot) cannot be vetted: refused."""
        path = os.readlink(str(fd), dir_fd=self.own_fds)  # as the caller's root sees it
        entry = entries.get(seccomp.mount_id(fd))
        if entry is None:
            raise OSError(errno.EPERM, f"{path} lies outside the caller's root")
        return Place(path, entry)


def _allow(verdict: mountguard.Verdict, syscall: str, pid: int) -> None:
    """Go on if the guard allows the call; else refuse it with the guard's errno."""
    if verdict.error:
        raise SyscallRefused(verdict.error, f"refused {syscall} for pid {pid}: {verdict.reason}")


def _mount(
    opened: _Opened, call: _Call, protected: set[str], record: int, fresh: int | None
) -> None:
    """mount(2) on the opened fds (`/proc/self/fd/N` of the helper): what was checked is what
    is mounted. `fresh` is a procfs or sysfs made already, detached, to attach if allowed."""
    target_fd = opened.open(call.target, follow=not call.flags & MS_NOSYMFOLLOW)
    source_fd = None
    if call.takes_source:
        source_fd = opened.open(_source(call))
    entries = opened.entries()
    target_place = opened.place(target_fd, entries)
    source_place = None if source_fd is None else opened.place(source_fd, entries)
    guard = Guard(entries, protected)
    verdict = guard.mount(call.flags, call.fstype, target_place, source_place)
    _allow(verdict, "mount", call.pid)
    os.fchdir(opened.own_fds)
    data = call.data
    if call.fstype == "overlay" and data is not None and source_fd is None:
        data = _overlay_options(opened, guard, entries, data, call.pid)
    if fresh is not None:
        mounts.attach(fresh, target_fd)
    else:
        source_arg = call.source if source_fd is None else str(source_fd)
        mounts.mount(source_arg, str(target_fd), call.fstype, call.flags, data)
    if verdict.fresh:
        assert fresh is not None  # made detached before the check
        assert call.fstype is not None
        _virtualize_fresh(opened, fresh, call.fstype, call.target, entries, record)


def _source(call: _Call) -> str:
    if call.source is None:
        raise SyscallRefused(errno.EFAULT)
    return call.source


def _overlay_options(
    opened: _Opened,
    guard: Guard,
    entries: dict[int, mountguard.MountEntry],
    data: bytes,
    pid: int,
) -> bytes:
    """overlay's options with its layers' paths made absolute (they are read in the helper's
    cwd); refused if a layer would show a protected mount unmasked (an overlay of /sys)."""
    cwd = os.readlink(str(opened.cwd), dir_fd=opened.own_fds)
    text = mountguard.absolute_overlay_options(data.decode("utf-8", "surrogateescape"), cwd)
    for layer in mountguard.overlay_layers(text):
        if guard.covers_protected(opened.place(opened.open(layer), entries)):
            why = f"refused mount for pid {pid}: overlay layer {layer} would unmask"
            raise SyscallRefused(errno.EPERM, why)
    return text.encode("utf-8", "surrogateescape")


def _umount(opened: _Opened, call: _Call, protected: set[str]) -> None:
    """umount2 on the opened mount itself when detaching (busy or not does not matter then);
    else by its last name (`_umount_by_name`)."""
    target_fd = opened.open(call.target, follow=not call.flags & UMOUNT_NOFOLLOW)
    if not call.flags & MNT_DETACH:
        _umount_by_name(opened, call, protected, target_fd)
        return
    entries = opened.entries()
    _allow(Guard(entries, protected).umount(opened.place(target_fd, entries)), "umount2", call.pid)
    os.fchdir(opened.own_fds)
    mounts.unmount(str(target_fd), flags=call.flags & ~UMOUNT_NOFOLLOW)


def _umount_by_name(opened: _Opened, call: _Call, protected: set[str], target_fd: int) -> None:
    """umount2 by the last name in the opened parent directory, without following it (an fd
    on the mount would keep it busy), the name checked to be what the path named."""
    path = os.readlink(str(target_fd), dir_fd=opened.own_fds)
    parent, name = os.path.split(path)
    if not name:  # the root itself
        parent, name = "/", "."
    parent_fd = opened.open(parent)
    child = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    try:
        same = _same_object(child, target_fd)
        entries = opened.entries()
        verdict = Guard(entries, protected).umount(opened.place(child, entries))
    finally:
        os.close(child)
    if not same:
        raise SyscallRefused(errno.EAGAIN)  # renamed meanwhile: the caller may retry
    _allow(verdict, "umount2", call.pid)
    opened.close(keep=parent_fd)
    os.fchdir(parent_fd)
    mounts.unmount(name, flags=call.flags | UMOUNT_NOFOLLOW)


def _same_object(a: int, b: int) -> bool:
    sa, sb = os.fstat(a), os.fstat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino) and seccomp.mount_id(
        a
    ) == seccomp.mount_id(b)


# -- a fresh procfs or sysfs, masked as the container's own --

#: one bind or tmpfs mount masking part of a fresh procfs or sysfs:
#: (source, fd of the target below the fresh mount, fstype, flags)
_Step = tuple[str | None, int, str | None, int]


def _virtualize_fresh(
    opened: _Opened,
    fresh: int,
    fstype: str,
    target: str,
    before: dict[int, mountguard.MountEntry],
    record: int,
) -> None:
    """Mask and virtualize a procfs or sysfs the container just mounted at `target`, as its
    own is (`mountguard.FRESH_MASKS`): lxcfs files from the container's own, /dev/null over
    the masked files, an empty read-only tmpfs over the masked directories; then protect them.
    Undone if any step fails."""
    try:
        steps = _mask_steps(opened, fresh, fstype, target, before)
        os.fchdir(opened.own_fds)
        for source_arg, child, step_type, flags in steps:
            size = b"size=0" if step_type else None
            mounts.mount(source_arg, str(child), step_type, flags, size)
        _protect(opened, fresh, [child for _, child, _, _ in steps], record)
    except OSError as exc:
        os.fchdir(opened.own_fds)
        with contextlib.suppress(OSError):
            mounts.unmount(str(fresh), detach=True)
        why = f"could not virtualize a fresh {fstype} at {target}: {exc}; undone"
        raise SyscallRefused(errno.EPERM, why) from exc


def _mask_steps(
    opened: _Opened,
    fresh: int,
    fstype: str,
    target: str,
    before: dict[int, mountguard.MountEntry],
) -> list[_Step]:
    """The mounts that mask the fresh procfs or sysfs, their sources checked to be what they
    should (the container's lxcfs files, the null device)."""
    own, lxcfs_files, masked_files, masked_dirs = mountguard.FRESH_MASKS[fstype]
    os.fchdir(opened.cwd)
    entry = opened.entries().get(seccomp.mount_id(fresh))
    if entry is None or entry.fstype != fstype or entry.mount_id in before:
        raise OSError(errno.EPERM, f"{target} is not the {fstype} just mounted")
    null = opened.open("/dev/null")
    if os.fstat(null).st_rdev != NULL_DEVICE:
        raise OSError(errno.EPERM, "/dev/null is not the null device")
    steps: list[_Step] = []
    for name in lxcfs_files:
        source = opened.open(f"{own}/{name}")
        entry = before.get(seccomp.mount_id(source))
        if entry is None or entry.fstype != mountguard.LXCFS_TYPE:
            raise OSError(errno.EPERM, f"{own}/{name} is not lxcfs's")
        steps.append((str(source), _child(opened, fresh, name), None, MS_BIND))
    for name in masked_files:
        with contextlib.suppress(FileNotFoundError):
            steps.append((str(null), _child(opened, fresh, name), None, MS_BIND))
    for name in masked_dirs:
        with contextlib.suppress(FileNotFoundError):
            child = _child(opened, fresh, name)
            steps.append(("tmpfs", child, "tmpfs", MS_RDONLY))
    return steps


def _protect(opened: _Opened, fresh: int, targets: list[int], record: int) -> None:
    """Record the masks just mounted as protected: a restarted supervisor reads them too."""
    after = opened.entries()
    added = set()
    for child in targets:
        # the fd names the mountpoint below: open the name again to reach the mount
        mounted = os.open(opened.names[child], os.O_PATH | os.O_CLOEXEC, dir_fd=fresh)
        found = after.get(seccomp.mount_id(mounted))
        os.close(mounted)
        if found is not None:
            added.add(mountguard.identity(found, after))
    os.write(record, "".join(f"{i}\n" for i in sorted(added)).encode())


def _child(opened: _Opened, directory: int, name: str) -> int:
    fd = os.open(name, os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=directory)
    opened.fds.append(fd)
    opened.names[fd] = name
    return fd


def serve(state_dir: str) -> int:
    """Supervise until SIGTERM: `<supervisorDir>/pid` appears once the socket listens."""
    from eci.runtime.shim.config import RuntimeConfig

    directory = RuntimeConfig.load(state_dir).supervisor_dir
    libc.handle()  # loaded once here, not again in every forked helper
    supervisor = Supervisor(directory)
    server = supervisor.start()
    _log(f"supervising mounts on {os.path.join(directory, LISTENER)}")
    with serve_until_signalled(os.path.join(directory, "pid")):
        supervisor.run(server)
    return 0
