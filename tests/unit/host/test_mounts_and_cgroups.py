"""mountinfo parsing and cgroup subtree discovery, on scripted input."""

from __future__ import annotations

from pathlib import Path

import pytest

from eci.host import cgroups
from eci.host.mounts import is_under, mount_points, mounts_under

MOUNTINFO = """\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
90 22 0:50 / /tmp/eci-a/docker/overlay2/x/merged rw - overlay overlay rw
91 22 0:51 / /tmp/eci-ab/run rw - tmpfs tmpfs rw
92 22 0:52 / /tmp/eci-a/run/with\\040space rw - tmpfs tmpfs rw
"""


@pytest.mark.parametrize(
    ("path", "root", "expected"),
    [
        ("/a/b", Path("/a/b"), True),
        ("/a/b/c", Path("/a/b"), True),
        ("/a/bc", Path("/a/b"), False),
        ("/a", Path("/a/b"), False),
        ("/anything", Path("/"), True),
    ],
    ids=["same", "below", "prefix-not-component", "above", "root"],
)
def test_is_under_compares_whole_components(path: str, root: Path, expected: bool) -> None:
    assert is_under(path, root) is expected


def test_mount_points_unescape_octal() -> None:
    assert "/tmp/eci-a/run/with space" in mount_points(MOUNTINFO)


def test_mounts_under_only_our_tree() -> None:
    assert mounts_under(Path("/tmp/eci-a"), mountinfo=MOUNTINFO) == [
        "/tmp/eci-a/docker/overlay2/x/merged",
        "/tmp/eci-a/run/with space",
    ]


def _fake_cgroup_tree(root: Path) -> None:
    for controller in ("memory", "pids"):
        for sub in ("eci123", "eci123/c1", "docker", "docker/c9"):
            d = root / controller / sub
            d.mkdir(parents=True)
            (d / "cgroup.procs").write_text("")
    (root / "memory/eci123/c1/cgroup.procs").write_text("4242\n4243\n")
    (root / "memory/docker/c9/cgroup.procs").write_text("999\n")


def test_cgroup_pids_come_only_from_our_parent(tmp_path: Path) -> None:
    _fake_cgroup_tree(tmp_path)
    assert cgroups.pids_in("/eci123", tmp_path) == {4242, 4243}
    assert cgroups.pids_in("/nothing", tmp_path) == set()


def test_cgroup_subtree_roots_in_every_hierarchy(tmp_path: Path) -> None:
    _fake_cgroup_tree(tmp_path)
    roots = cgroups.subtree_roots("/eci123", tmp_path)
    assert roots == [tmp_path / "memory/eci123", tmp_path / "pids/eci123"]
