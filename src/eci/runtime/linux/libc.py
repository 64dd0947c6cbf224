"""The C library, loaded once and only when first called, and calls to it that raise OSError.

Python 3.11 has no wrappers for the mount API, setns, unshare, ptrace or seccomp: the runtime
calls them through ctypes. Every such call goes through `call` or `syscall` here, so a failure
is always the same exception, OSError(errno, "<call>: <strerror>"), and never a -1 that a
caller forgot to check. The handle is made on first use: a shim command that makes no such
call does not pay for it.
"""

from __future__ import annotations

import ctypes
import os

from eci.runtime.linux import syscalls

_handle: ctypes.CDLL | None = None


def handle() -> ctypes.CDLL:
    """This process's C library (errno kept per call, for `_check`)."""
    global _handle
    if _handle is None:
        _handle = ctypes.CDLL(None, use_errno=True)
    return _handle


def _check(result: int, what: str) -> int:
    """`result`, or OSError(errno, "`what`: strerror") when a call returned a negative value.
    `what` starts with the call's name (and may say what it was called on)."""
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def call(name: str, *args: object, what: str = "") -> int:
    """The C library's function `name` with `args`; OSError on failure (see `_check`)."""
    return _check(getattr(handle(), name)(*args), what or name)


def syscall(name: str, *args: object, what: str = "") -> int:
    """System call `name`, by this machine's number for it; OSError on failure (`_check`),
    or ENOSYS when the machine's number is not known."""
    return _check(handle().syscall(syscalls.number(name), *args), what or name)
