"""The supervisor's bookkeeping of helpers: a container with MAX_HELPERS at work is not read
(its calls wait in the kernel) until one is done, and a helper past its deadline is killed
with its process group and its call answered ETIMEDOUT. Listener fds are pipes here and the
answers are recorded instead of sent; the helpers are real child processes."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from pathlib import Path

import pytest

from eci.runtime.confine import seccomp, supervisor
from eci.runtime.confine.supervisor import MAX_HELPERS, Supervisor, _Helper

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
    sup.selector.register(pidfd, supervisor.selectors.EVENT_READ, "helper")
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
