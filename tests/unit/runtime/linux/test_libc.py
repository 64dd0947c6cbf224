"""`libc`: one C library handle, and calls that fail as OSError(errno, "<call>: <strerror>")."""

from __future__ import annotations

import ctypes
import errno
import os
import sys

import pytest

from eci.runtime.linux import libc, syscalls
from eci.runtime.linux.constants import AT_EMPTY_PATH, STATX_MNT_ID


def test_one_handle() -> None:
    assert libc.handle() is libc.handle()


def test_a_call_returns_what_the_function_returns() -> None:
    assert libc.call("getpid") == os.getpid()


def test_a_failed_call_carries_its_name_and_errno() -> None:
    with pytest.raises(OSError, match=r"^\[Errno \d+\] close: Bad file descriptor$") as info:
        libc.call("close", -1)
    assert info.value.errno == errno.EBADF


def test_what_says_what_the_call_was_made_on() -> None:
    with pytest.raises(OSError, match=r"close fd -1: Bad file descriptor") as info:
        libc.call("close", -1, what="close fd -1")
    assert info.value.errno == errno.EBADF


def test_a_failed_system_call_carries_its_name_and_errno() -> None:
    buf = ctypes.create_string_buffer(256)
    with pytest.raises(OSError, match=r"\] statx: Bad file descriptor$") as info:
        libc.syscall("statx", -1, b"", AT_EMPTY_PATH, STATX_MNT_ID, buf)
    assert info.value.errno == errno.EBADF


def test_a_system_call_by_this_machines_number() -> None:
    """statx of an open file fills the mask: the number called was statx's here."""
    buf = ctypes.create_string_buffer(256)
    fd = os.open("/", os.O_RDONLY | os.O_CLOEXEC)
    try:
        assert libc.syscall("statx", fd, b"", AT_EMPTY_PATH, STATX_MNT_ID, buf) == 0
    finally:
        os.close(fd)
    assert int.from_bytes(buf.raw[:4], sys.byteorder) & STATX_MNT_ID


def test_no_call_on_an_unknown_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    class Uname:
        machine = "riscv64"

    monkeypatch.setattr(syscalls.os, "uname", Uname)
    with pytest.raises(OSError, match="'riscv64'") as info:
        libc.syscall("statx", -1, b"", 0, 0, None)
    assert info.value.errno == errno.ENOSYS
