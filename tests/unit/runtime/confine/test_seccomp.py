"""`seccomp`: the seccomp_notif structure as the kernel packs it, which syscall a notification
names on each architecture, and `read_string` against a plain file standing in for a task's
/proc/<pid>/mem (os.pread works the same on both).

Hypothesis invariant (test_read_string_finds_any_string_without_crossing_a_page): wherever a
string lies and however long it is (within the limit), `read_string` returns it exactly and no
single read crosses a 4096-byte boundary (the next page of a task may be unmapped).
"""

from __future__ import annotations

import errno
import os
import struct
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eci.runtime.confine import seccomp
from eci.runtime.confine.seccomp import (
    NOTIF,
    RESPONSE,
    Notification,
    read_string,
)
from eci.runtime.linux.syscalls import (
    AUDIT_ARCH_AARCH64,
    AUDIT_ARCH_I386,
    AUDIT_ARCH_X86_64,
    X32_SYSCALL_BIT,
)
from eci.runtime.shim.spec import SUPERVISED_SYSCALLS

PAGE = 4096
AUDIT_ARCH_ARM = 0x40000028
AUDIT_ARCH_RISCV64 = 0xC00000F3


def packed(
    nr: int,
    arch: int = AUDIT_ARCH_X86_64,
    notif_id: int = 0x1122334455667788,
    pid: int = 4242,
    args: tuple[int, ...] = (0x7FFC0000, 0x7FFC1000, 0, 0x1000, 0, 0),
) -> bytes:
    return NOTIF.pack(notif_id, pid, 0, nr, arch, 0x7F0011223344, *args)


# --- the structures ---


def test_structure_sizes() -> None:
    assert NOTIF.size == 80  # seccomp_notif: id, pid, flags, seccomp_data (64)
    assert RESPONSE.size == 24  # seccomp_notif_resp: id, val, error, flags


def test_notification_fields() -> None:
    args = (1, 2, 3, 0xFFFFFFFFFFFFFFFF, 5, 6)
    notif = Notification(packed(165, args=args))
    assert notif.id == 0x1122334455667788
    assert notif.pid == 4242
    assert notif.nr == 165
    assert notif.arch == AUDIT_ARCH_X86_64
    assert notif.args == args


def test_notification_field_offsets() -> None:
    """linux/seccomp.h: id at 0, pid at 8, flags at 12, nr at 16, arch at 20, ip at 24, args
    from 32, native-endian."""
    raw = bytearray(80)
    struct.pack_into("=Q", raw, 0, 7)
    struct.pack_into("=I", raw, 8, 99)
    struct.pack_into("=i", raw, 16, 166)
    struct.pack_into("=I", raw, 20, AUDIT_ARCH_X86_64)
    struct.pack_into("=6Q", raw, 32, *range(10, 16))
    notif = Notification(bytes(raw))
    assert (notif.id, notif.pid, notif.nr, notif.arch) == (7, 99, 166, AUDIT_ARCH_X86_64)
    assert notif.args == (10, 11, 12, 13, 14, 15)


def test_negative_syscall_number() -> None:
    notif = Notification(packed(-1))
    assert notif.nr == -1
    assert notif.syscall is None


@pytest.mark.parametrize("size", [0, 79, 81, 160])
def test_notification_of_the_wrong_size(size: int) -> None:
    with pytest.raises(struct.error):
        Notification(bytes(size))


def test_response_packs_a_negated_errno() -> None:
    """What `respond` sends: the kernel wants -errno."""
    data = RESPONSE.pack(5, 0, -errno.EPERM, 0)
    assert struct.unpack("=QqiI", data) == (5, 0, -1, 0)


# --- which syscall ---


@pytest.mark.parametrize(
    ("arch", "nr", "name"),
    [
        (AUDIT_ARCH_X86_64, 165, "mount"),
        (AUDIT_ARCH_X86_64, 166, "umount2"),
        (AUDIT_ARCH_X86_64, 99, "sysinfo"),
        (AUDIT_ARCH_X86_64, 165 | X32_SYSCALL_BIT, "mount"),
        (AUDIT_ARCH_X86_64, 166 | X32_SYSCALL_BIT, "umount2"),
        (AUDIT_ARCH_X86_64, 99 | X32_SYSCALL_BIT, "sysinfo"),
        (AUDIT_ARCH_I386, 21, "mount"),
        (AUDIT_ARCH_I386, 22, "umount"),
        (AUDIT_ARCH_I386, 52, "umount2"),
        (AUDIT_ARCH_I386, 116, "sysinfo"),
        (AUDIT_ARCH_AARCH64, 40, "mount"),
        (AUDIT_ARCH_AARCH64, 39, "umount2"),
        (AUDIT_ARCH_AARCH64, 179, "sysinfo"),
    ],
    ids=[
        "x86_64-mount",
        "x86_64-umount2",
        "x86_64-sysinfo",
        "x32-mount",
        "x32-umount2",
        "x32-sysinfo",
        "i386-mount",
        "i386-umount",
        "i386-umount2",
        "i386-sysinfo",
        "aarch64-mount",
        "aarch64-umount2",
        "aarch64-sysinfo",
    ],
)
def test_syscall_by_architecture(arch: int, nr: int, name: str) -> None:
    assert Notification(packed(nr, arch)).syscall == name


@pytest.mark.parametrize(
    ("arch", "nr"),
    [
        (AUDIT_ARCH_X86_64, 21),  # access: i386's mount number means something else here
        (AUDIT_ARCH_X86_64, 22),  # pipe
        (AUDIT_ARCH_X86_64, 40),  # sendfile
        (AUDIT_ARCH_X86_64, 428),  # open_tree
        (AUDIT_ARCH_X86_64, 332),  # statx: in the table, but not a call the supervisor vets
        (AUDIT_ARCH_I386, 165),  # getresuid
        (AUDIT_ARCH_I386, 21 | X32_SYSCALL_BIT),  # the x32 bit is x86_64's only
        (AUDIT_ARCH_AARCH64, 165),  # getrusage
        (AUDIT_ARCH_AARCH64, 40 | X32_SYSCALL_BIT),
        (AUDIT_ARCH_ARM, 21),  # arm's mount: an architecture the table does not know
        (AUDIT_ARCH_RISCV64, 40),
        (0, 165),
    ],
    ids=[
        "x86_64-access",
        "x86_64-pipe",
        "x86_64-sendfile",
        "x86_64-open_tree",
        "x86_64-statx",
        "i386-getresuid",
        "i386-x32-bit",
        "aarch64-getrusage",
        "aarch64-x32-bit",
        "arm",
        "riscv64",
        "no-arch",
    ],
)
def test_other_syscalls_are_none(arch: int, nr: int) -> None:
    assert Notification(packed(nr, arch)).syscall is None


def test_the_supervisor_vets_what_the_containers_filter_sends_it() -> None:
    assert sorted(seccomp.VETTED) == sorted(SUPERVISED_SYSCALLS)


# --- mount_id ---


def test_mount_id_is_the_one_proc_shows() -> None:
    """statx by this machine's number: the id /proc/self/fdinfo gives for the same fd."""
    fd = os.open("/proc", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            fields = dict(line.split(":", 1) for line in f.read().splitlines())
        assert seccomp.mount_id(fd) == int(fields["mnt_id"])
    finally:
        os.close(fd)


def test_mount_id_of_a_closed_fd_names_statx() -> None:
    with pytest.raises(OSError, match="statx") as info:
        seccomp.mount_id(-1)
    assert info.value.errno == errno.EBADF


# --- read_string ---


@pytest.fixture
def mem() -> Iterator[int]:
    """A file standing in for /proc/<pid>/mem: three pages of 0xFF (no terminator)."""
    with tempfile.TemporaryFile() as f:
        f.write(b"\xff" * (3 * PAGE))
        f.flush()
        yield f.fileno()


def put(fd: int, address: int, data: bytes) -> None:
    os.pwrite(fd, data, address)


def test_null_pointer_is_none() -> None:
    assert read_string(-1, 0) is None  # the fd is not even read


@pytest.mark.parametrize("address", [1, 100, PAGE, PAGE + 17, 2 * PAGE - 1])
def test_string_at_an_address(mem: int, address: int) -> None:
    put(mem, address, b"/proc/kcore\0")
    assert read_string(mem, address) == "/proc/kcore"


def test_empty_string(mem: int) -> None:
    put(mem, 10, b"\0")
    assert read_string(mem, 10) == ""


@pytest.mark.parametrize("before", [1, 5, 11, 4095])
def test_string_crossing_a_page_boundary(mem: int, before: int) -> None:
    text = b"/var/lib/docker/overlay2/" + b"x" * 40
    put(mem, PAGE - before, text + b"\0")
    assert read_string(mem, PAGE - before) == text.decode()


def test_string_spanning_a_whole_page(mem: int) -> None:
    text = b"a" * (PAGE + 100)
    put(mem, 50, text + b"\0")
    assert read_string(mem, 50, limit=2 * PAGE) == text.decode()


def test_no_terminator_within_the_limit(mem: int) -> None:
    with pytest.raises(OSError, match="no string terminator within 16 bytes") as info:
        read_string(mem, 100, limit=16)
    assert info.value.errno == errno.EINVAL


def test_terminator_at_the_limits_edge(mem: int) -> None:
    """`limit` bytes are read, terminator included: 15 characters fit in 16, 16 do not."""
    put(mem, 100, b"a" * 15 + b"\0")
    assert read_string(mem, 100, limit=16) == "a" * 15
    put(mem, 200, b"a" * 16 + b"\0")
    with pytest.raises(OSError, match="terminator"):
        read_string(mem, 200, limit=16)


def test_default_limit_is_a_page(mem: int) -> None:
    put(mem, 0, b"b" * 5000 + b"\0")
    with pytest.raises(OSError, match="within 4096 bytes"):
        read_string(mem, 1)


def test_end_of_memory_before_a_terminator(mem: int) -> None:
    with pytest.raises(OSError, match="terminator"):
        read_string(mem, 3 * PAGE - 4)  # four 0xff bytes, then nothing to read


def test_address_past_the_end(mem: int) -> None:
    with pytest.raises(OSError, match="terminator"):
        read_string(mem, 10 * PAGE)


def test_bytes_that_are_not_utf8_round_trip(mem: int) -> None:
    raw = b"/tmp/\xff\xfe-\xc3\xa9"
    put(mem, 300, raw + b"\0")
    text = read_string(mem, 300)
    assert text is not None
    assert text.encode("utf-8", "surrogateescape") == raw
    assert text.endswith("-é")


def test_unreadable_memory_raises(tmp_path: Path) -> None:
    """A read error (EIO for an unmapped page of /proc/<pid>/mem) is not swallowed."""
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(IsADirectoryError):
            read_string(fd, 100)
    finally:
        os.close(fd)


def spy_preads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record every (offset, size) read_string asks of os.pread."""
    reads: list[tuple[int, int]] = []
    real = os.pread

    def pread(fd: int, size: int, offset: int) -> bytes:
        reads.append((offset, size))
        return real(fd, size, offset)

    monkeypatch.setattr(os, "pread", pread)  # what seccomp calls
    return reads


def test_reads_stop_at_page_boundaries(mem: int, monkeypatch: pytest.MonkeyPatch) -> None:
    put(mem, PAGE - 3, b"abcdefgh\0")
    reads = spy_preads(monkeypatch)
    assert read_string(mem, PAGE - 3) == "abcdefgh"
    assert reads == [(PAGE - 3, 3), (PAGE, PAGE - 3)]  # never past the page, nor the limit


@given(
    address=st.integers(1, 2 * PAGE),
    length=st.integers(0, 200),
    limit=st.integers(1, 300),
)
def test_read_string_finds_any_string_without_crossing_a_page(
    address: int, length: int, limit: int
) -> None:
    text = bytes((ord("a") + i % 26) for i in range(length))
    reads: list[tuple[int, int]] = []
    real = os.pread

    def pread(fd: int, size: int, offset: int) -> bytes:
        reads.append((offset, size))
        return real(fd, size, offset)

    with tempfile.TemporaryFile() as f, pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(os, "pread", pread)  # what seccomp calls
        f.write(b"\xff" * (3 * PAGE + 400))
        f.flush()
        os.pwrite(f.fileno(), text + b"\0", address)
        if length < limit:
            assert read_string(f.fileno(), address, limit) == text.decode()
        else:
            with pytest.raises(OSError, match="terminator"):
                read_string(f.fileno(), address, limit)
    assert sum(size for _, size in reads) <= limit
    for offset, size in reads:
        assert size >= 1
        assert offset // PAGE == (offset + size - 1) // PAGE


# --- a process's filters, read and laid on another (the `docker cp` extractor's) ---

#: getppid's number where eci runs
GETPPID = {"x86_64": 110, "aarch64": 173}[os.uname().machine]
#: BPF_LD|BPF_W|BPF_ABS seccomp_data.nr; BPF_JMP|BPF_JEQ getppid → ERRNO(EPERM), else ALLOW
GETPPID_DENIED = b"".join(
    struct.pack("=HBBI", code, jt, jf, k)
    for code, jt, jf, k in (
        (0x20, 0, 0, 0),
        (0x15, 0, 1, GETPPID),
        (0x06, 0, 0, 0x00050000 | errno.EPERM),
        (0x06, 0, 0, 0x7FFF0000),
    )
)


def test_filters_read_from_a_process_work_on_another() -> None:
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        seccomp.no_new_privileges()
        seccomp.install(GETPPID_DENIED)
        os.write(ready_w, b"x")
        os.read(done_r, 1)  # ptrace-stopped and let go meanwhile
        os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"x"
        programs = seccomp.filters_of(pid)
    finally:
        os.write(done_w, b"x")
        os.waitpid(pid, 0)
        for fd in (ready_r, ready_w, done_r, done_w):
            os.close(fd)
    assert programs == [GETPPID_DENIED]
    child = os.fork()
    if child == 0:
        seccomp.no_new_privileges()
        for program in programs:
            seccomp.install(program)
        os._exit(0 if os.getppid() == -1 else 1)  # os.getppid does not raise
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_process_without_filters_has_none() -> None:
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    try:
        assert seccomp.filters_of(pid) == []
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
