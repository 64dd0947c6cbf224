"""The runtime shim through the real Docker CLI, each point proven against plain runc first.

Plain runc is the control: `--runtime=runc` on dockerd's own socket (the proxy would force the
eci runtime) reaches runc unchanged, so the same action is shown to work there before eci is
shown to refuse it. What the proxy already refuses is sent past it too (``direct``), to prove
the shim's defence in depth on its own.
"""

from __future__ import annotations

import itertools
import json
import os
import pwd
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import (
    TEST_USER,
    EngineHandle,
    eventually,
    live_ranges,
    run,
    uid_map,
    user_owned_dir,
)

from eci.contract.labels import REQUESTER_LABEL
from eci.errors import restricted_mount_message

pytestmark = pytest.mark.engine

RUNC = "--runtime=runc"
# Plain runc cannot grant CAP_SYS_RESOURCE here (bounding set), so its "privileged enough"
# control gets the capability that matters for mounts and no LSM/seccomp confinement.
RUNC_MOUNT_CONTROL = [
    RUNC,
    "--cap-add=SYS_ADMIN",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
]


def sh(
    engine: EngineHandle,
    script: str,
    *options: str,
    check: bool = True,
    image: str = "busybox",
    direct: bool = False,
) -> str:
    """Run ``script`` in a new container; runc controls always go to dockerd directly."""
    result = engine.docker(
        "run",
        "--rm",
        *options,
        image,
        "sh",
        "-c",
        script,
        check=check,
        direct=direct or RUNC in options,
    )
    return result.stdout if check else result.stdout + result.stderr


@pytest.fixture
def root_owned_dir() -> Iterator[Path]:
    """A 0755 root-owned host directory: only host root may create files in it."""
    path = Path(tempfile.mkdtemp(prefix="rootdir-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


# 1. user namespace


@pytest.mark.parametrize(
    "options",
    [[], ["--privileged"], ["--userns=host"]],
    ids=["default", "privileged", "userns-host"],
)
def test_every_container_gets_its_own_user_namespace(
    engine: EngineHandle, options: list[str]
) -> None:
    control = sh(engine, "cat /proc/self/uid_map", RUNC)
    assert uid_map(control) == (0, 0, 4294967295)
    uids, gids = sh(engine, "cat /proc/self/uid_map /proc/self/gid_map", *options).splitlines()
    inside, base, count = uid_map(uids)
    assert (inside, count) == (0, 65536)
    assert base >= 100000
    assert uid_map(gids) == (0, base, 65536)  # one container: ranges are reused LRU


def test_docker_inspect_shows_sysbox_runc(engine: EngineHandle) -> None:
    name = f"rt-{secrets.token_hex(4)}"
    engine.docker("create", "--name", name, "busybox", "true")
    try:
        fmt = "{{.HostConfig.Runtime}}"
        assert engine.docker("inspect", "--format", fmt, name).stdout.strip() == "sysbox-runc"
    finally:
        engine.docker("rm", "-f", name)


# 2. exclusive ranges


def test_running_containers_get_disjoint_ranges_released_on_removal(engine: EngineHandle) -> None:
    before = live_ranges(engine.layout)
    names = [f"rng-{secrets.token_hex(4)}" for _ in range(3)]
    try:
        for name in names:
            engine.docker("run", "-d", "--name", name, "busybox", "sleep", "300")
        bases = [
            uid_map(engine.docker("exec", name, "cat", "/proc/self/uid_map").stdout)[1]
            for name in names
        ]
        assert len(set(bases)) == 3
        ordered = sorted(bases)
        assert all(b - a >= 65536 for a, b in itertools.pairwise(ordered))
        assert len(live_ranges(engine.layout)) == len(before) + 3
    finally:
        engine.docker("rm", "-f", *names, direct=True)
    assert eventually(lambda: live_ranges(engine.layout) == before)  # cleanups run after rm


# 3. root filesystem


def test_image_files_keep_their_owners_and_root_can_write(engine: EngineHandle) -> None:
    out = sh(engine, "stat -c '%u:%g' /bin/busybox /etc; touch /etc/eci-probe && echo wrote")
    assert out.split() == ["0:0", "0:0", "wrote"]


def test_files_written_land_with_container_relative_owners(engine: EngineHandle) -> None:
    name = f"own-{secrets.token_hex(4)}"
    engine.docker(
        "run",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "echo hi > /root/by-root; touch /tmp/by-1000; chown 1000:1000 /tmp/by-1000",
    )
    try:
        upper = Path(
            engine.docker(
                "inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", name
            ).stdout.strip()
        )
        assert os.stat(upper / "root/by-root").st_uid == 0
        assert (os.stat(upper / "tmp/by-1000").st_uid, os.stat(upper / "tmp/by-1000").st_gid) == (
            1000,
            1000,
        )
        image = f"eci-commit-{secrets.token_hex(4)}"
        engine.docker("commit", name, image)
        try:
            # read back with plain runc: the committed image itself carries uid 0 / 1000
            owners = sh(engine, "stat -c '%u' /root/by-root /tmp/by-1000", RUNC, image=image)
            assert owners.split() == ["0", "1000"]
        finally:
            engine.docker("rmi", image)
    finally:
        engine.docker("rm", "-f", name)


def test_docker_cp_from_a_stopped_container_shows_uid_0(engine: EngineHandle) -> None:
    name = f"cp-{secrets.token_hex(4)}"
    engine.docker("run", "--name", name, "busybox", "sh", "-c", "echo hi > /root/f")
    try:
        listing = run(
            [
                "sh",
                "-c",
                f"docker -H {engine.docker_host} cp {name}:/root/f - | tar --numeric-owner -tvf -",
            ]
        ).stdout
        assert listing.split()[1] == "0/0"
    finally:
        engine.docker("rm", "-f", name)


@pytest.fixture
def upload_dir() -> Iterator[Path]:
    """A file owned by uid 1234 (and a directory holding it), readable by the test user."""
    path = Path(tempfile.mkdtemp(prefix="eci-cp-", dir="/tmp"))
    path.chmod(0o755)
    (path / "f").write_text("uploaded\n")
    os.chown(path / "f", 1234, 1234)
    (path / "f").chmod(0o644)
    yield path
    shutil.rmtree(path)


@pytest.mark.parametrize("runtime", ["runc", "eci"])
def test_docker_cp_into_a_running_container(
    engine: EngineHandle, upload_dir: Path, runtime: str
) -> None:
    """Control: plain runc (dockerd extracts as host root). eci: dockerd could not write
    through the idmapped root filesystem (EOVERFLOW); the proxy extracts inside the container
    as its root, with dockerd's semantics: the archive's owners are kept, and `-a` gives the
    files to the container's configured user. On disk they have the container's ids."""
    direct = runtime == "runc"
    options = [RUNC] if direct else []
    name = f"cpin-{runtime}-{secrets.token_hex(4)}"
    engine.docker(
        "run",
        "-d",
        "--name",
        name,
        "--user",
        "root",
        *options,
        "busybox",
        "sleep",
        "300",
        direct=direct,
    )
    try:
        engine.docker("cp", str(upload_dir / "f"), f"{name}:/tmp/", direct=direct)
        engine.docker("cp", "-a", str(upload_dir / "f"), f"{name}:/root/", direct=direct)
        listing = engine.docker(
            "exec", name, "sh", "-c", "cat /tmp/f; stat -c '%u:%g' /tmp/f /root/f", direct=direct
        ).stdout.split()
        assert listing == ["uploaded", "1234:1234", "0:0"]
        upper = engine.docker(
            "inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", name, direct=True
        ).stdout.strip()
        on_disk = [Path(upper, d, "f").stat() for d in ("tmp", "root")]
        assert [(st.st_uid, st.st_gid) for st in on_disk] == [(1234, 1234), (0, 0)]
        missing = engine.docker("cp", str(upload_dir / "f"), f"{name}:/nope/", check=False)
        assert missing.returncode != 0
    finally:
        engine.docker("rm", "-f", name, direct=True)


# 4. bind mounts and volumes


def test_bind_mounted_root_owned_dir_is_not_writable(
    engine: EngineHandle, root_owned_dir: Path
) -> None:
    script = "touch /host/probe && echo wrote"
    control = sh(engine, script, RUNC, "-v", f"{root_owned_dir}:/host")
    assert control.strip() == "wrote"
    (root_owned_dir / "probe").unlink()
    refused = sh(engine, script, "-v", f"{root_owned_dir}:/host", check=False)
    assert "Permission denied" in refused
    assert not (root_owned_dir / "probe").exists()


@pytest.fixture
def users_dir() -> Iterator[Path]:
    """A directory of the test user holding one of its files and one of root's."""
    with user_owned_dir("eci-users-") as path:
        yield _with_mine_and_roots(path)


def _with_mine_and_roots(path: Path) -> Path:
    user = pwd.getpwnam(TEST_USER)
    (path / "mine").write_text("mine\n")
    os.chown(path / "mine", user.pw_uid, user.pw_gid)
    (path / "roots").write_text("root's\n")
    return path


LIST_AND_WRITE = (
    "stat -c '%n %u:%g' /d/mine /d/roots; touch /d/new && echo wrote-new; "
    "echo x >> /d/roots && echo wrote-roots"
)


def test_the_requesters_own_files_are_container_roots_and_writes_land_as_the_requester(
    engine: EngineHandle, users_dir: Path
) -> None:
    """Control: plain runc container root owns everything in the bind, writes root's file
    and leaves root-owned files in the user's directory. eci, asked by the user: the user's
    files are root's inside, what root writes lands as the user, root's file is nobody's."""
    user = pwd.getpwnam(TEST_USER)
    control = sh(engine, LIST_AND_WRITE, RUNC, "-v", f"{users_dir}:/d").split("\n")
    assert control[:2] == [f"/d/mine {user.pw_uid}:{user.pw_gid}", "/d/roots 0:0"]
    assert "wrote-roots" in control
    assert (users_dir / "new").stat().st_uid == 0  # the hazard eci removes
    (users_dir / "new").unlink()
    (users_dir / "roots").write_text("root's\n")

    out = sh(engine, LIST_AND_WRITE, "-v", f"{users_dir}:/d", check=False).split("\n")
    assert out[:2] == ["/d/mine 0:0", "/d/roots 65534:65534"]
    assert "wrote-new" in out
    assert "wrote-roots" not in out
    new = (users_dir / "new").stat()
    assert (new.st_uid, new.st_gid) == (user.pw_uid, user.pw_gid)
    assert (users_dir / "roots").read_text() == "root's\n"


def test_root_asking_gets_no_mapping(engine: EngineHandle, users_dir: Path) -> None:
    """Root's own files are never mapped, and a container root asks for gets none."""
    out = engine.docker(
        "run",
        "--rm",
        "-v",
        f"{users_dir}:/d",
        "busybox",
        "stat",
        "-c",
        "%u",
        "/d/mine",
        user=None,
    ).stdout
    assert out.strip() == "65534"


def test_a_client_cannot_name_the_requester(engine: EngineHandle) -> None:
    refused = engine.docker(
        "run", "--rm", "--label", f"{REQUESTER_LABEL}=0:0", "busybox", "true", check=False
    )
    assert refused.returncode != 0
    assert f"the label {REQUESTER_LABEL} is eci's own" in refused.stderr


def test_an_image_cannot_name_the_requester(engine: EngineHandle, users_dir: Path) -> None:
    """An image labelled with the user's ids, run by root past the proxy: no mapping."""
    user = pwd.getpwnam(TEST_USER)
    name = f"eci-requester-label:{secrets.token_hex(4)}"
    context = Path(tempfile.mkdtemp(prefix="eci-label-"))
    try:
        (context / "Dockerfile").write_text(
            f"FROM busybox\nLABEL {REQUESTER_LABEL}={user.pw_uid}:{user.pw_gid}\n"
        )
        engine.docker("build", "-q", "-t", name, str(context), direct=True)
        out = sh(engine, "stat -c %u /d/mine", "-v", f"{users_dir}:/d", image=name, direct=True)
        assert out.strip() == "65534"
    finally:
        engine.docker("rmi", name, direct=True, check=False)
        shutil.rmtree(context)


def test_host_root_bind_cannot_touch_etc(engine: EngineHandle) -> None:
    target = f"/host/etc/eci-escape-{secrets.token_hex(4)}"
    at_proxy = sh(engine, f"touch {target}", "-v", "/:/host", check=False)
    assert restricted_mount_message("/") in at_proxy
    in_shim = sh(engine, f"touch {target}", "-v", "/:/host", check=False, direct=True)
    assert restricted_mount_message("/") in in_shim  # the shim checks every bind again
    assert not Path(target.removeprefix("/host")).exists()


def test_named_volume_is_writable_by_container_root(engine: EngineHandle) -> None:
    volume = f"vol-{secrets.token_hex(4)}"
    try:
        out = sh(engine, "echo hi > /v/f && stat -c %u /v/f", "-v", f"{volume}:/v")
        assert out.strip() == "0"
        data = json.loads(engine.docker("volume", "inspect", volume).stdout)[0]["Mountpoint"]
        assert os.stat(Path(data) / "f").st_uid == 0
    finally:
        engine.docker("volume", "rm", "-f", volume)


def test_ro_bind_stays_read_only_even_for_privileged_root(
    engine: EngineHandle, root_owned_dir: Path
) -> None:
    script = "mount -o remount,rw /data && echo remounted"
    control = sh(engine, script, *RUNC_MOUNT_CONTROL, "-v", f"{root_owned_dir}:/data:ro")
    assert control.strip() == "remounted"
    refused = sh(engine, script, "--privileged", "-v", f"{root_owned_dir}:/data:ro", check=False)
    assert "remounted" not in refused
    assert "permission denied" in refused.lower()


# 5. fix-ups


def test_privileged_works_under_eci_where_plain_runc_fails(engine: EngineHandle) -> None:
    control = sh(engine, "echo ok", RUNC, "--privileged", check=False)
    assert "ok" not in control.split()  # the host bounding set lacks CAP_SYS_RESOURCE
    assert sh(engine, "echo ok", "--privileged").strip() == "ok"


def test_ping_group_range_is_clamped_to_the_container_ids(engine: EngineHandle) -> None:
    script = "cat /proc/sys/net/ipv4/ping_group_range"
    assert sh(engine, script, RUNC).split() == ["0", "2147483647"]
    assert sh(engine, script).split() == ["0", "65535"]


def test_cgroup_namespace_hides_the_host_hierarchy(engine: EngineHandle) -> None:
    script = "grep -v '^0::' /proc/self/cgroup | head -1"
    assert engine.layout.cgroup_parent in sh(engine, script, RUNC, "--cgroupns=host")
    assert sh(engine, script).strip().endswith(":/")


# 6. defence in depth


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "--pid=host",
            "sysbox containers can't share namespaces [pid] with the host "
            "(because they use the linux user-namespace for isolation)",
        ),
        (
            "--ipc=host",
            "sysbox containers can't share namespaces [ipc] with the host "
            "(because they use the linux user-namespace for isolation)",
        ),
        (
            "--uts=host",
            "sysbox containers can't share namespaces [uts] with the host "
            "(because they use the linux user-namespace for isolation)",
        ),
        (
            "--network=host",
            "sysbox containers can't share a network namespace with the host "
            "(because they use the linux user-namespace for isolation)",
        ),
    ],
    ids=["pid", "ipc", "uts", "network"],
)
def test_host_namespaces_are_refused(engine: EngineHandle, option: str, message: str) -> None:
    assert sh(engine, "echo ok", RUNC, option).strip() == "ok"
    before = live_ranges(engine.layout)
    for direct in (False, True):  # the proxy refuses it, and so does the shim on its own
        refused = engine.docker(
            "run", "--rm", option, "busybox", "true", check=False, direct=direct
        )
        assert refused.returncode != 0
        assert message in refused.stderr
    assert eventually(lambda: live_ranges(engine.layout) == before)


# runc-compatible CLI: the commands the shim passes straight to runc


def test_exec_pause_top_update_restart_keep_working(engine: EngineHandle) -> None:
    name = f"ops-{secrets.token_hex(4)}"
    cid = engine.docker("run", "-d", "--name", name, "busybox", "sleep", "300").stdout.strip()
    try:
        base = uid_map(engine.docker("exec", name, "cat", "/proc/self/uid_map").stdout)[1]
        engine.docker("pause", name)
        engine.docker("unpause", name)
        # container root is the range's base on the host (numeric: ps's default UID column
        # cuts ids of over 8 digits, which LRU reuse reaches, to `1864188+`)
        top = engine.docker("top", name, "-o", "uid,pid,args").stdout
        assert top.splitlines()[1].split()[0] == str(base), top
        engine.docker("update", "--memory", "64m", "--memory-swap", "128m", name)
        engine.docker("exec", name, "sh", "-c", "echo kept > /root/state")
        engine.docker("restart", "-t", "1", name)
        assert engine.docker("exec", name, "cat", "/root/state").stdout == "kept\n"
        engine.docker("stop", "-t", "1", name)
        engine.docker("start", name)
        assert engine.docker("exec", name, "cat", "/root/state").stdout == "kept\n"
        assert uid_map(engine.docker("exec", name, "cat", "/proc/self/uid_map").stdout)[2] == 65536
    finally:
        engine.docker("rm", "-f", name)
    assert eventually(lambda: not (engine.layout.runtime_dir / cid).exists())
    assert eventually(lambda: not (engine.layout.rootfs_dir / cid).exists())


def test_symlink_planted_in_a_volume_cannot_redirect_an_idmapped_bind(engine: EngineHandle) -> None:
    """Volume data is idmapped to container root; a symlink planted inside the volume must not
    make eci idmap the host directory it points at."""
    volume = f"vol-{secrets.token_hex(4)}"
    try:
        sh(engine, "ln -s /etc /v/hostetc", "-v", f"{volume}:/v")
        data = json.loads(engine.docker("volume", "inspect", volume).stdout)[0]["Mountpoint"]
        source = f"{data}/hostetc"
        # control: plain runc follows the link to the host's /etc
        assert (
            sh(engine, "test -f /x/passwd && echo host-etc", RUNC, "-v", f"{source}:/x").strip()
            == "host-etc"
        )
        refused = engine.docker(
            "run",
            "--rm",
            "-v",
            f"{source}:/x",
            "busybox",
            "touch",
            "/x/eci-pwned",
            check=False,
            direct=True,  # the proxy refuses the data-root path outright
        )
        assert refused.returncode != 0
        assert "beneath" in refused.stderr  # openat2 refused the symlink
        assert not Path("/etc/eci-pwned").exists()
    finally:
        engine.docker("volume", "rm", "-f", volume)


def test_volume_that_binds_a_host_dir_is_not_handed_to_container_root(
    engine: EngineHandle, root_owned_dir: Path
) -> None:
    """`docker volume create -o type=none -o o=bind -o device=DIR`: its _data is a mount of a
    host directory, so it keeps host ids (only real volume storage is idmapped)."""
    volume = f"bindvol-{secrets.token_hex(4)}"
    engine.docker(
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        f"device={root_owned_dir}",
        volume,
    )
    try:
        script = "touch /h/probe && echo wrote"
        assert sh(engine, script, RUNC, "-v", f"{volume}:/h").strip() == "wrote"
        (root_owned_dir / "probe").unlink()
        refused = sh(engine, script, "-v", f"{volume}:/h", check=False)
        assert "Permission denied" in refused
        assert not (root_owned_dir / "probe").exists()
    finally:
        engine.docker("volume", "rm", "-f", volume)


def test_shim_refuses_restricted_binds_by_what_they_resolve_to(engine: EngineHandle) -> None:
    """Past the proxy (dockerd's own socket), a bind whose source is, contains, or is a symlink
    to a restricted path is refused by the shim on the tree it opened: a symlink swapped
    after any earlier check cannot redirect what runc mounts."""
    link_dir = Path(tempfile.mkdtemp(prefix="eci-link-", dir="/var/tmp"))
    try:
        (link_dir / "link").symlink_to("/etc/docker")
        for source in ("/", f"{link_dir}/link", str(engine.layout.state_dir)):
            refused = engine.docker(
                "run", "--rm", "-v", f"{source}:/h:ro", "busybox", "true", check=False, direct=True
            )
            assert refused.returncode != 0, source
            assert restricted_mount_message(source) in refused.stderr
        # control: the same link to a harmless directory is mounted
        (link_dir / "link").unlink()
        (link_dir / "link").symlink_to("/usr")
        out = sh(
            engine,
            "ls /h/bin >/dev/null && echo mounted",
            "-v",
            f"{link_dir}/link:/h:ro",
            direct=True,
        )
        assert out.strip() == "mounted"
    finally:
        shutil.rmtree(link_dir)
