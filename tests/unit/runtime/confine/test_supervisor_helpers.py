"""The supervisor's helpers.

Their bookkeeping: a container with MAX_HELPERS at work is not read (its calls wait in the
kernel) until one is done, and a helper past its deadline is killed with its process group and
its call answered ETIMEDOUT. Listener fds are pipes here and the answers are recorded instead
of sent; the helpers are real child processes.

Their steps (read the call, open the caller's paths, enter its namespaces) and the one place
where a refusal becomes the caller's errno, on stand-ins: a directory for the caller's /proc
entry, a file for its memory, a recording setns.
"""

from __future__ import annotations

import array
import contextlib
import errno
import json
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eci.errors import SyscallRefused
from eci.runtime.confine import mountguard, seccomp, supervisor
from eci.runtime.confine.enter import NAMESPACES
from eci.runtime.confine.supervisor import MAX_HELPERS, Supervisor, _Call, _Helper
from eci.runtime.linux import mounts

Answers = list[tuple[int, int, int]]


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Answers:
    sent: Answers = []

    def respond(fd: int, notif_id: int, error: int, value: int = 0) -> None:
        sent.append((fd, notif_id, error))

    monkeypatch.setattr(seccomp, "respond", respond)
    return sent


def listener(sup: Supervisor, container_id: str) -> int:
    """A readable fd standing in for a container's seccomp listener."""
    read, write = os.pipe()
    os.write(write, b"x")
    sup._watch(read, container_id, 0)
    return read


def stuck_helper() -> int:
    """A child in a process group of its own, with a child of its own, never finishing."""
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        time.sleep(60)
        os._exit(0)
    return pid


def registered(sup: Supervisor) -> set[int]:
    return {key.fd for key in sup.selector.get_map().values()}


def test_a_busy_container_is_not_read_until_a_helper_is_done(tmp_path: Path) -> None:
    sup = Supervisor(str(tmp_path))
    busy, other = listener(sup, "busy"), listener(sup, "other")
    for _ in range(MAX_HELPERS):
        sup.busy["busy"] = sup.busy.get("busy", 0) + 1
    sup._hold("busy", True)
    assert registered(sup) == {other}
    late = listener(sup, "busy")  # an exec of the held container registers meanwhile
    assert registered(sup) == {other}
    sup._hold("busy", False)
    assert registered(sup) == {other, busy, late}


def test_a_helper_past_its_deadline_is_killed_and_its_call_times_out(
    tmp_path: Path, answers: Answers, monkeypatch: pytest.MonkeyPatch
) -> None:
    sup = Supervisor(str(tmp_path))
    pid = stuck_helper()
    try:
        time.sleep(0.2)  # let it make its group
        helper = _Helper(7, 42, pid, "busy")
        sup.helpers[99] = helper
        assert sup._expire() is not None  # not due yet: nothing done
        assert answers == []
        helper.deadline = time.monotonic() - 1
        assert sup._expire() is None
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status)
        assert os.WTERMSIG(status) == signal.SIGKILL
        assert answers == [(7, 42, errno.ETIMEDOUT)]
        assert helper.answered
        assert group_gone(pid)  # its child went with it
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def group_gone(pgid: int) -> bool:
    """No process is left in group `pgid` (an orphan is reaped by init a moment later)."""
    for _ in range(100):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_a_timed_out_call_is_not_answered_twice(tmp_path: Path, answers: Answers) -> None:
    """When the killed helper is reaped, its exit status is not sent as a second answer."""
    sup = Supervisor(str(tmp_path))
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    pidfd = os.pidfd_open(pid)
    sup.selector.register(pidfd, selectors.EVENT_READ, "helper")
    helper = _Helper(7, 42, pid, "busy")
    helper.answered = True
    sup.helpers[pidfd] = helper
    sup.busy["busy"] = MAX_HELPERS
    sup.held.add("busy")
    sup.helped(pidfd)
    assert answers == []
    assert sup.busy == {"busy": MAX_HELPERS - 1}
    assert "busy" not in sup.held


def test_a_listener_held_after_select_returned_it_is_not_read(
    tmp_path: Path, answers: Answers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """select() may return several listeners of one container at once: once the container is
    held by the first, the others are left to the kernel (no fourth helper, no KeyError)."""

    def receive(fd: int) -> seccomp.Notification:
        raise AssertionError(f"listener {fd} of a held container was read")

    monkeypatch.setattr(seccomp, "receive", receive)
    sup = Supervisor(str(tmp_path))
    busy = listener(sup, "busy")
    sup.busy["busy"] = MAX_HELPERS
    sup._hold("busy", True)
    sup.notified(busy)
    assert sup.helpers == {}
    assert answers == []


# --- registration ---


@pytest.mark.parametrize(
    "bad_id",
    ["", ".", "..", "a..b", "../x", "a/b", "-rf", "\u00e91"],
    ids=["empty", "dot", "dotdot", "inner-dotdot", "parent-path", "slash", "flag", "non-ascii"],
)
def test_a_registration_for_an_id_that_could_name_another_path_is_refused(
    tmp_path: Path, bad_id: str
) -> None:
    """The same rule as the shim's (`invocation.valid_container_id`): nothing is written, no
    keeper is forked, the listener is closed (the container's calls then fail)."""
    sup = Supervisor(str(tmp_path))
    os.makedirs(sup.containers_dir)
    read, write = os.pipe()
    os.close(write)
    sup.register(read, bad_id, os.getpid(), 0)
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(read)
    assert os.listdir(sup.containers_dir) == []
    assert sup.listeners == {}


def test_runcs_state_is_read_till_eof_with_the_fds_it_sends() -> None:
    """runc's listenerPath protocol: the container's state as JSON, the listener fd with it."""
    runc, ours = socket.socketpair()
    read, write = os.pipe()
    state = {"pid": 42, "state": {"id": "c1", "pid": 41}, "pad": "x" * (1 << 16)}
    try:
        runc.sendmsg(
            [json.dumps(state).encode()],
            [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [write]))],
        )
        runc.close()
        fds = array.array("i")
        assert supervisor._receive_state(ours, fds) == state  # longer than one recvmsg
        assert len(fds) == 1
        os.write(fds[0], b"x")  # the pipe's write end, passed along
        assert os.read(read, 1) == b"x"
        os.close(fds[0])
    finally:
        ours.close()
        for fd in (read, write):
            os.close(fd)


# --- the one place a refusal becomes the caller's errno ---


@pytest.mark.parametrize(
    ("exit_code", "answer"),
    [(0, 0), (errno.EBUSY, errno.EBUSY), (254, 254), (255, errno.EPERM), (-9, errno.EPERM)],
    ids=["done", "errno", "highest-errno", "crashed", "killed"],
)
def test_a_helper_exit_code_is_the_callers_errno_or_eperm(exit_code: int, answer: int) -> None:
    assert supervisor._answer_of(exit_code) == answer


def _done() -> int:
    return 0


def _refused_busy() -> int:
    raise SyscallRefused(errno.EBUSY, "refused mount for pid 7: busy")


def _refused_quietly() -> int:
    raise SyscallRefused(errno.EFAULT)


def _os_error() -> int:
    raise OSError(errno.ENOENT, "an error no step turned into a refusal")


def _bug() -> int:
    raise RuntimeError("a bug")


@pytest.mark.parametrize(
    ("work", "answer", "logged"),
    [
        (_done, 0, ""),
        (_refused_busy, errno.EBUSY, "refused mount for pid 7: busy"),
        (_refused_quietly, errno.EFAULT, ""),
        (_os_error, errno.EPERM, "step: FileNotFoundError"),
        (_bug, errno.EPERM, "step: RuntimeError('a bug')"),
    ],
    ids=["done", "refused", "refused-quietly", "stray-oserror", "bug"],
)
def test_a_child_answers_its_refusal_and_fails_closed_on_anything_else(
    capfd: pytest.CaptureFixture[str], work: Callable[[], int], answer: int, logged: str
) -> None:
    assert supervisor._in_child(work, "step") == answer
    err = capfd.readouterr().err
    assert (logged in err) if logged else err == ""


def test_a_refusal_carries_its_errno_and_why() -> None:
    refused = SyscallRefused(errno.EAGAIN, "renamed")
    assert (refused.errno, refused.why) == (errno.EAGAIN, "renamed")
    assert str(refused) == f"errno {errno.EAGAIN}: renamed"
    assert SyscallRefused(errno.EFAULT).why == ""


def test_a_verdict_that_refuses_raises_its_errno() -> None:
    supervisor._allow(mountguard.Verdict(), "mount", 7)  # allowed: nothing raised
    with pytest.raises(SyscallRefused) as refused:
        supervisor._allow(mountguard.Verdict(errno.EPERM, "protected"), "umount2", 7)
    assert refused.value.errno == errno.EPERM
    assert refused.value.why == "refused umount2 for pid 7: protected"


# --- read the call ---

MS_MGC_VAL = 0xC0ED0000
FS_TYPE = "proc"


def notification(syscall: str, pid: int, *args: int) -> seccomp.Notification:
    arch, nr = next(key for key, name in seccomp.SYSCALLS.items() if name == syscall)
    padded = (*args, *(0,) * (6 - len(args)))
    return seccomp.Notification(seccomp.NOTIF.pack(1, pid, 0, nr, arch, 0, *padded))


@pytest.fixture
def proc(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A stand-in /proc/<pid>: status (with CAP_SYS_ADMIN), mem (strings at known addresses)."""
    entry = tmp_path / "proc"
    entry.mkdir()
    (entry / "status").write_text("Name:\tx\nCapEff:\t0000000000200000\n")
    memory = bytearray(0x4000)
    for address, text in MEMORY.items():
        memory[address : address + len(text) + 1] = text.encode() + b"\0"
    memory[-3:] = b"abc"  # no terminator before the end: unreadable
    (entry / "mem").write_bytes(bytes(memory))
    fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)
    yield fd, entry
    os.close(fd)


SOURCE, TARGET, FSTYPE, DATA, UNTERMINATED = 0x100, 0x200, 0x300, 0x400, 0x4000 - 3
MEMORY = {SOURCE: "/src", TARGET: "/mnt/target", FSTYPE: "overlay", DATA: "lowerdir=a"}


def test_a_mount_is_read_from_the_callers_memory(proc: tuple[int, Path]) -> None:
    notif = notification("mount", 7, SOURCE, TARGET, FSTYPE, MS_MGC_VAL | 0x1000, DATA)
    call = supervisor._read_call(notif, proc[0])
    assert (call.syscall, call.pid) == ("mount", 7)
    assert (call.source, call.target, call.fstype) == ("/src", "/mnt/target", "overlay")
    assert call.flags == 0x1000  # the old magic number dropped, as the kernel does
    assert call.data == b"lowerdir=a"


def test_umount2_flags_are_the_low_32_bits(proc: tuple[int, Path]) -> None:
    call = supervisor._read_call(notification("umount2", 7, TARGET, (1 << 40) | 2), proc[0])
    assert (call.syscall, call.target, call.flags, call.source) == (
        "umount2",
        "/mnt/target",
        2,
        None,
    )


def test_umount_is_umount2_without_flags(proc: tuple[int, Path]) -> None:
    call = supervisor._read_call(notification("umount", 7, TARGET, 2), proc[0])
    assert (call.syscall, call.target, call.flags) == ("umount", "/mnt/target", 0)


@pytest.mark.parametrize(
    ("syscall", "args", "error"),
    [
        ("mount", (SOURCE, 0, FSTYPE, 0, 0), errno.EFAULT),
        ("umount2", (0, 0), errno.EFAULT),
        ("mount", (SOURCE, TARGET, UNTERMINATED, 0, 0), errno.EINVAL),
        ("umount2", (0x10000, 0), errno.EINVAL),
    ],
    ids=["mount-null-target", "umount2-null-target", "unterminated", "past-the-end"],
)
def test_an_unreadable_call_is_refused_with_the_read_error(
    proc: tuple[int, Path], syscall: str, args: tuple[int, ...], error: int
) -> None:
    with pytest.raises(SyscallRefused) as refused:
        supervisor._read_call(notification(syscall, 7, *args), proc[0])
    assert refused.value.errno == error


def test_a_caller_without_cap_sys_admin_is_refused_before_its_memory_is_read(
    proc: tuple[int, Path],
) -> None:
    fd, entry = proc
    (entry / "status").write_text("Name:\tx\nCapEff:\t00000000001fffff\n")  # all below bit 21
    (entry / "mem").unlink()
    with pytest.raises(SyscallRefused) as refused:
        supervisor._read_call(notification("mount", 7, SOURCE, TARGET, FSTYPE, 0, 0), fd)
    assert (refused.value.errno, refused.value.why) == (errno.EPERM, "")


# --- what a call is ---

MS_RDONLY, MS_BIND, MS_MOVE, MS_REMOUNT, MS_REC = 0x1, 0x1000, 0x2000, 0x20, 0x4000
MS_PRIVATE = 1 << 18


def mount_call(fstype: str | None, flags: int) -> _Call:
    return _Call("mount", 7, "/src", "/mnt", fstype, flags, None)


@pytest.mark.parametrize(
    ("flags", "takes"),
    [
        (MS_BIND, True),
        (MS_BIND | MS_REC, True),
        (MS_MOVE, True),
        (MS_BIND | MS_REMOUNT, False),
        (MS_BIND | MS_PRIVATE, False),
        (0, False),
    ],
    ids=["bind", "rbind", "move", "bind-remount", "bind-propagation", "new"],
)
def test_binds_and_moves_take_their_source_as_a_path(flags: int, takes: bool) -> None:
    assert mount_call(None, flags).takes_source is takes


@pytest.mark.parametrize(
    ("fstype", "flags", "as_host"),
    [
        ("proc", 0, True),
        ("sysfs", MS_RDONLY, True),
        ("tmpfs", 0, False),
        ("proc", MS_BIND, False),
        ("proc", MS_REMOUNT, False),
        ("proc", MS_PRIVATE, False),
    ],
    ids=["fresh-proc", "fresh-sysfs", "tmpfs", "bind-of-proc", "remount", "propagation"],
)
def test_only_a_fresh_procfs_or_sysfs_is_made_as_host(
    fstype: str, flags: int, as_host: bool
) -> None:
    assert mount_call(fstype, flags).made_as_host is as_host
    assert not _Call("umount2", 7, None, "/proc", None, 0, None).made_as_host


@pytest.mark.parametrize(
    ("path", "entry"),
    [
        ("/proc/self/fd/3", "fd/3"),
        ("/proc/thread-self/fd/12", "fd/12"),
        ("/proc/self/exe", "exe"),
        ("/proc/self/fd/x", None),
        ("/proc/self/fd/", None),
        ("/proc/self/cwd", None),
        ("/proc/self/fd/3/sub", None),
        ("/proc/1/fd/3", None),
        ("/proc/selfish/fd/3", None),
        ("proc/self/fd/3", None),
    ],
)
def test_the_callers_own_proc_entries_are_recognised(path: str, entry: str | None) -> None:
    assert supervisor._own_entry(path) == entry


# --- enter its namespaces ---


@pytest.fixture
def joined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[int]]:
    """A stand-in /proc/<pid> with its ns/ files, and the kinds setns was called with."""
    (tmp_path / "ns").mkdir()
    for name, _ in NAMESPACES:
        (tmp_path / name).write_text("")
    kinds: list[int] = []

    def setns(fd: int, kind: int) -> None:
        os.fstat(fd)  # an open fd
        kinds.append(kind)

    monkeypatch.setattr(mounts, "setns", setns)
    return os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY), kinds


def test_every_namespace_is_joined_in_order_for_an_ordinary_call(
    joined: tuple[int, list[int]],
) -> None:
    proc, kinds = joined
    fds = open_fds()
    assert supervisor._enter_namespaces(proc, mount_call("tmpfs", 0)) == []
    assert kinds == [kind for _, kind in NAMESPACES]
    assert open_fds() == fds  # each closed once joined


def test_a_fresh_procfs_joins_mount_and_user_namespaces_late(
    joined: tuple[int, list[int]],
) -> None:
    proc, kinds = joined
    late = supervisor._enter_namespaces(proc, mount_call("proc", 0))
    assert kinds == [kind for _, kind in NAMESPACES[1:-1]]
    assert [kind for _, kind in late] == [NAMESPACES[0][1], NAMESPACES[-1][1]]
    for fd, _ in late:
        os.close(fd)


def refusing_setns(monkeypatch: pytest.MonkeyPatch, error: int) -> None:
    def setns(fd: int, kind: int) -> None:
        raise OSError(error, "refused")

    monkeypatch.setattr(mounts, "setns", setns)


def test_a_namespace_the_helper_is_in_already_is_not_joined_again(
    joined: tuple[int, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing_setns(monkeypatch, errno.EINVAL)
    fds = open_fds()
    supervisor._join(joined[0], 7, "ns/net", NAMESPACES[1][1])
    assert open_fds() == fds


@pytest.mark.parametrize(("error", "answer"), [(errno.EPERM, errno.EPERM), (0, errno.EPERM)])
def test_a_namespace_that_cannot_be_joined_refuses_the_call(
    joined: tuple[int, list[int]], monkeypatch: pytest.MonkeyPatch, error: int, answer: int
) -> None:
    """Its errno (EPERM when it has none); the namespace's fd is closed all the same."""
    refusing_setns(monkeypatch, error)
    fds = open_fds()
    with pytest.raises(SyscallRefused) as refused:
        supervisor._join(joined[0], 7, "ns/net", NAMESPACES[1][1])
    assert refused.value.errno == answer
    assert refused.value.why.startswith("cannot join ns/net of pid 7: ")
    assert open_fds() == fds


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))
