"""A local user outside group docker must not reach a running container's filesystem.

The attacker (``OUTSIDER``) knows what any local user knows: the mount points in
/proc/self/mountinfo, which name the container's id and the engine's directories. From there
they try to read a world-readable file of a running container (an env file with a password)
and to run a setuid-root binary the container's root planted, which would make them the
container's root on the host and let them write into the container. Host root reading the
same paths is the control: the paths do hold the container's files. A walk of the engine's
state and run directories then lists everything a user outside docker could traverse, read,
write or connect to, which must be only what is justified below. Setuid must keep working
inside the container: the planted binary, run by a non-root container user, gains its
owner's ids there.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.security.escape import compile_static
from tests.support import OUTSIDER, EngineHandle, as_user, eventually, uid_map

from eci.host.mounts import is_under, mount_points

pytestmark = pytest.mark.engine

IDPROBE_SOURCE = Path(__file__).with_name("idprobe.c")
SECRET = "PASSWORD=outsider-must-not-read-this"
ENV_FILE = "etc/app.env"
#: where the container's root plants idprobe, setuid and setgid (its own ids: a file the host
#: user makes must have a gid of the container's range)
PLANTED = "bin/idprobe"
#: a non-root user of the container (busybox has no name for it: ids are enough)
CONTAINER_USER = "1000:1000"


@pytest.fixture(scope="module")
def helpers() -> Iterator[Path]:
    """idprobe.c compiled once, in a directory the container binds read-only."""
    directory = Path(tempfile.mkdtemp(prefix="eci-idprobe-", dir="/tmp"))
    directory.chmod(0o755)
    try:
        compile_static(IDPROBE_SOURCE, directory)
        yield directory
    finally:
        shutil.rmtree(directory)


@pytest.fixture(scope="module")
def victim(engine: EngineHandle, helpers: Path) -> Iterator[str]:
    """A running container of the test user: a world-readable env file holding a password,
    and idprobe planted setuid and setgid by the container's root."""
    script = (
        f"echo {SECRET} > /{ENV_FILE} && chmod 644 /{ENV_FILE} && "
        f"cp /helpers/idprobe /{PLANTED} && chmod 6755 /{PLANTED} && "
        "touch /ready && exec sleep 600"
    )
    cid = engine.docker(
        "run", "-d", "-v", f"{helpers}:/helpers:ro", "busybox", "sh", "-c", script
    ).stdout.strip()
    try:
        assert eventually(
            lambda: engine.docker("exec", cid, "test", "-e", "/ready", check=False).returncode == 0
        ), engine.docker("logs", cid, check=False)
        yield cid
    finally:
        engine.docker("rm", "-f", cid, check=False)


def outsiders_mount_points() -> list[str]:
    """Every mount point the outsider reads in /proc/self/mountinfo."""
    return mount_points(as_user(OUTSIDER, ["cat", "/proc/self/mountinfo"], check=True).stdout)


def container_paths(engine: EngineHandle, cid: str) -> list[Path]:
    """The mount points below the engine's dirs where the container's files are (the
    control: host root reads the secret there); the first of them names the container."""
    layout = engine.layout
    found = [
        Path(point)
        for point in outsiders_mount_points()
        if (is_under(point, layout.state_dir) or is_under(point, layout.run_dir))
        and _holds_secret(Path(point))
    ]
    assert any(cid in str(path) for path in found), (cid, found)
    return found


def _holds_secret(root: Path) -> bool:
    try:
        return SECRET in (root / ENV_FILE).read_text()
    except OSError:
        return False


def test_outsider_cannot_read_a_running_containers_files(engine: EngineHandle, victim: str) -> None:
    for root in container_paths(engine, victim):
        attempt = as_user(OUTSIDER, ["cat", str(root / ENV_FILE)])
        assert SECRET not in attempt.stdout, (root, attempt)
        assert attempt.returncode != 0, (root, attempt)
        assert "Permission denied" in attempt.stderr, attempt


def test_outsider_cannot_run_a_setuid_binary_planted_by_container_root(
    engine: EngineHandle, victim: str
) -> None:
    for number, root in enumerate(container_paths(engine, victim)):
        planted = root / PLANTED
        assert planted.stat().st_mode & stat.S_ISUID, planted  # the control: it is there
        target = f"pwned-{number}"
        attempt = as_user(OUTSIDER, [str(planted), str(root / target)])
        assert "wrote" not in attempt.stdout, (root, attempt)
        assert attempt.returncode != 0, (root, attempt)
        assert "Permission denied" in attempt.stderr, attempt
        inside = engine.docker("exec", victim, "test", "-e", f"/{target}", check=False)
        assert inside.returncode == 1, f"{target} appeared in the container: {attempt}"


def test_setuid_works_inside_the_container_for_a_non_root_user(
    engine: EngineHandle, victim: str
) -> None:
    ran = engine.docker(
        "exec", "-u", CONTAINER_USER, victim, f"/{PLANTED}", "/tmp/by-user", check=False
    )
    assert ran.stdout.splitlines() == ["ruid=1000 euid=0 rgid=1000 egid=0", "wrote"], ran
    owner = engine.docker("exec", victim, "stat", "-c", "%u", "/tmp/by-user").stdout.strip()
    assert owner == "0"  # written as the container's root


def _rights(st: os.stat_result, uid: int, gids: set[int]) -> str:
    """What the user with `uid` and `gids` may do to a file with `st`, as `ls` letters."""
    shift = 6 if st.st_uid == uid else 3 if st.st_gid in gids else 0
    bits = (st.st_mode >> shift) & 0o7
    return "".join(letter for letter, bit in (("r", 4), ("w", 2), ("x", 1)) if bits & bit)


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except FileNotFoundError:
        return []


def reachable_by(user: str, top: Path) -> dict[str, str]:
    """Every path below `top` (and `top`) that `user` may traverse (dirs), read, write or
    connect to (other files), with its rights; walked as root, which knows every name (a
    user learns them from mountinfo and /proc), but entered only where `user` could go."""
    account = pwd.getpwnam(user)
    uid, gids = account.pw_uid, set(os.getgrouplist(user, account.pw_gid))
    found: dict[str, str] = {}
    top_rights = _rights(top.stat(), uid, gids)
    if top_rights:
        found[str(top)] = top_rights
    if "x" not in top_rights:
        return found
    pending = [top]
    while pending:
        for entry in _entries(pending.pop()):
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed meanwhile (a container's cleanup runs after its delete)
            if stat.S_ISLNK(st.st_mode):
                continue  # a link's target is judged where it is
            rights = _rights(st, uid, gids)
            if stat.S_ISDIR(st.st_mode):
                if "x" in rights:
                    pending.append(Path(entry.path))
                if rights:
                    found[entry.path] = rights
            elif "r" in rights or "w" in rights:
                found[entry.path] = rights
    return found


def test_outsider_reaches_nothing_under_the_engines_dirs(engine: EngineHandle, victim: str) -> None:
    layout = engine.layout
    assert is_under(str(layout.run_dir), layout.state_dir)  # a test engine: one walk covers both
    # Justified: the state dir and the run dir inside it lead to the user socket (0660,
    # group docker) and to the containers' root filesystems, which each container's root
    # must reach; rootfs/ only holds one root:<container root's gid> 0710 dir per container.
    justified = {str(p): "x" for p in (layout.state_dir, layout.run_dir, layout.rootfs_dir)}
    reached = reachable_by(OUTSIDER, layout.state_dir)
    assert reached == justified, sorted(set(reached.items()) - set(justified.items()))


def test_a_containers_rootfs_home_admits_its_own_root_alone(
    engine: EngineHandle, victim: str
) -> None:
    """The one thing under rootfs/ the walk passes by: root's, group the container root's gid
    on the host (no other container's root has it), 0710."""
    _inside, base, _count = uid_map(
        engine.docker("exec", victim, "cat", "/proc/self/uid_map").stdout
    )
    home = (engine.layout.rootfs_dir / victim).stat()
    assert (home.st_uid, home.st_gid, stat.S_IMODE(home.st_mode)) == (0, base, 0o710)
