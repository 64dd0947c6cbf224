"""The extractor behind `docker cp` into a running container: dockerd's semantics for the
archive (tested here in a temporary directory; joining a container is the integration test's)
and member names that never leave the destination (a property)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eci.proxy.upstream import _container
from eci.runtime.cp.archive import (
    BAD_REQUEST,
    FAILED,
    NOT_FOUND,
    ArchiveError,
    extract,
    lookup_user,
    member_name,
)


def archive(*members: tuple[str, bytes | None, int]) -> io.BytesIO:
    """(name, content or None for a directory, uid) -> a tar stream."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content, uid in members:
            info = tarfile.TarInfo(name)
            info.uid = info.gid = uid
            if content is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(content)
                info.mode = 0o4755
                tar.addfile(info, io.BytesIO(content))
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize(("owner", "expected"), [(None, 1234), ((7, 8), 7)])
def test_owners_are_kept_unless_given_to_the_containers_user(
    tmp_path: Path, owner: tuple[int, int] | None, expected: int
) -> None:
    count = extract(archive(("d", None, 1234), ("d/f", b"hi", 1234)), str(tmp_path), True, owner)
    assert count == 2
    f = tmp_path / "d" / "f"
    assert f.read_bytes() == b"hi"
    assert f.stat().st_uid == expected
    assert f.stat().st_mode & 0o7777 == 0o4755


@pytest.mark.parametrize(
    ("spec", "ids"),
    [
        ("app", (1000, 1001)),
        ("app:staff", (1000, 50)),
        ("app:77", (1000, 77)),
        ("2000", (2000, 0)),
        ("2000:3000", (2000, 3000)),
        ("0", (0, 0)),
    ],
)
def test_the_containers_user_is_looked_up_in_its_own_files(
    tmp_path: Path, spec: str, ids: tuple[int, int]
) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/:/\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    assert lookup_user(spec, str(tmp_path)) == ids


@pytest.mark.parametrize("spec", ["nobody-here", "app:nogroup"])
def test_an_unknown_user_or_group_is_an_error(tmp_path: Path, spec: str) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("app:x:1000:1001::/:/\n")
    with pytest.raises(ArchiveError, match="unable to find") as raised:
        lookup_user(spec, str(tmp_path))
    assert raised.value.code == FAILED


def test_absolute_and_dotted_names_stay_below_the_destination(tmp_path: Path) -> None:
    extract(archive(("/abs", b"1", 0), ("./a/./b", b"2", 0)), str(tmp_path), True)
    assert (tmp_path / "abs").read_bytes() == b"1"
    assert (tmp_path / "a" / "b").read_bytes() == b"2"


def test_a_name_that_climbs_out_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    with pytest.raises(ArchiveError) as raised:
        extract(archive(("../escaped", b"x", 0)), str(tmp_path / "dest"), True)
    assert raised.value.code == BAD_REQUEST
    assert not (tmp_path / "escaped").exists()


def test_missing_destination_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError) as raised:
        extract(archive(("f", b"x", 0)), str(tmp_path / "nope"), True)
    assert raised.value.code == NOT_FOUND
    assert str(raised.value) == f"Could not find the file {tmp_path / 'nope'} in container"


def test_a_file_destination_is_a_bad_request(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArchiveError) as raised:
        extract(archive(("f", b"x", 0)), str(tmp_path / "file"), True)
    assert raised.value.code == BAD_REQUEST


def test_no_overwrite_dir_non_dir_keeps_a_directory(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(ArchiveError, match=r"cannot overwrite directory .* with non-directory"):
        extract(archive(("d", b"file now", 0)), str(tmp_path), True)
    assert (tmp_path / "d").is_dir()
    # without the flag, dockerd replaces it, and so does eci
    extract(archive(("d", b"file now", 0)), str(tmp_path), False)
    assert (tmp_path / "d").read_bytes() == b"file now"


def test_an_existing_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("keep")
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "f").symlink_to(outside)
    extract(archive(("f", b"new", 0)), str(tmp_path / "dest"), True)
    assert outside.read_text() == "keep"
    assert not (tmp_path / "dest" / "f").is_symlink()
    assert (tmp_path / "dest" / "f").read_bytes() == b"new"


@given(st.lists(st.sampled_from(["a", "..", ".", "", "b.", "..c"]), max_size=6))
def test_member_names_never_climb_or_go_absolute(parts: list[str]) -> None:
    """The invariant: a relative, normalized path of no '..', or ArchiveError."""
    name = "/".join(parts)
    if ".." in parts:
        with pytest.raises(ArchiveError) as raised:
            member_name(name)
        assert raised.value.code == BAD_REQUEST
        return
    cleaned = member_name(name)
    assert not cleaned.startswith("/")
    assert os.path.normpath(os.path.join("/dest", cleaned)).startswith("/dest")
    # the same place as the name means, read relative to the destination
    assert os.path.join("/dest", cleaned).rstrip("/") == os.path.normpath(
        os.path.join("/dest", name.lstrip("/"))
    )


@pytest.mark.parametrize(
    ("state", "pid"),
    [
        ({"Running": True, "Pid": 4242}, 4242),
        ({"Running": False, "Pid": 0}, 0),
        ({"Running": False, "Pid": 4242}, 0),
        ({"Running": True, "Pid": "4242"}, 0),
        (None, 0),
    ],
    ids=["running", "stopped", "stale-pid", "not-an-int", "no-state"],
)
def test_container_facts_carry_the_pid_only_while_running(state: object, pid: int) -> None:
    assert _container({"Id": "c", "State": state}).pid == pid
