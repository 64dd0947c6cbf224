"""`syscalls`: one table of call numbers per architecture, checked against the kernel's own
headers (a wrong number makes another call, silently), and an unknown machine refused by name."""

from __future__ import annotations

import errno
import os
import re
import subprocess
from pathlib import Path

import pytest

from eci.runtime.linux import syscalls
from eci.runtime.linux.syscalls import (
    AUDIT_ARCH_AARCH64,
    AUDIT_ARCH_I386,
    AUDIT_ARCH_X86_64,
    TABLE,
    number,
    numbers,
)

#: the asm-generic table, which aarch64 uses (installed with the C headers on every host)
GENERIC_HEADER = Path("/usr/include/asm-generic/unistd.h")


def _defines(text: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"#define __NR_(\w+)\s+(\d+)\b", text)}


@pytest.mark.parametrize(("machine", "statx"), [("aarch64", 291), ("x86_64", 332), ("i386", 383)])
def test_statx_has_each_architectures_own_number(machine: str, statx: int) -> None:
    assert number("statx", machine) == statx


def test_the_new_mount_api_is_numbered_alike_everywhere() -> None:
    for name in ("open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "mount_setattr"):
        assert {numbers(machine)[name] for machine in TABLE} == {number(name, "x86_64")}


def test_each_machine_has_its_audit_architecture() -> None:
    assert {machine: arch for machine, (arch, _) in TABLE.items()} == {
        "x86_64": AUDIT_ARCH_X86_64,
        "i386": AUDIT_ARCH_I386,
        "aarch64": AUDIT_ARCH_AARCH64,
    }


def test_aarch64_numbers_are_the_generic_headers() -> None:
    kernel = _defines(GENERIC_HEADER.read_text())
    ours = numbers("aarch64")
    assert {name: kernel.get(name) for name in ours} == ours


def test_this_machines_numbers_are_its_c_library_headers() -> None:
    """What `number(name)` answers here is what C code compiled here would call."""
    out = subprocess.run(
        ["gcc", "-dM", "-E", "-"],
        input="#include <sys/syscall.h>\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    kernel = _defines(out)
    ours = numbers(os.uname().machine)
    assert {name: kernel.get(name) for name in ours} == ours
    assert {name: number(name) for name in ours} == ours


def test_an_unknown_machine_is_refused_by_name() -> None:
    with pytest.raises(OSError, match=r"'riscv64' \(known: aarch64, i386, x86_64\)") as info:
        numbers("riscv64")
    assert info.value.errno == errno.ENOSYS


def test_this_machine_is_chosen_by_uname(monkeypatch: pytest.MonkeyPatch) -> None:
    class Uname:
        machine = "riscv64"

    monkeypatch.setattr(syscalls.os, "uname", Uname)
    with pytest.raises(OSError, match="riscv64") as info:
        number("statx")
    assert info.value.errno == errno.ENOSYS


def test_a_call_the_machine_lacks_is_refused_by_name() -> None:
    """umount(2) is i386's; x86_64 and aarch64 have only umount2."""
    assert number("umount", "i386") == 22
    with pytest.raises(OSError, match="'umount' on x86_64") as info:
        number("umount", "x86_64")
    assert info.value.errno == errno.ENOSYS
