"""Containers belong to whoever created them (finding 6 of issue 15).

The attacker is ``SECOND_USER``, another member of group docker; the victim's container is
created by ``TEST_USER`` through the proxy. Every action that reaches into a container or
changes it, done by the other tenant, is refused with a text naming the owner's uid; the
owner and root can do it; ``inspect`` and ``ps`` stay open. The control: with the admin
setting ``containerOwnership: false`` the same command by the other tenant works, as it does
in plain Docker.
"""

from __future__ import annotations

import json
import pwd
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support import (
    ECI_ON_LOCKED,
    SECOND_USER,
    TEST_USER,
    EngineHandle,
    api_as_user,
    reload_settings,
    run,
    settings_applied,
    socket_settings,
    unique,
)

from eci.errors import ECI_PREFIX

pytestmark = pytest.mark.engine

OWNER = pwd.getpwnam(TEST_USER)
#: how long an allowed `docker attach` is left attached before it is stopped
ATTACH_SECONDS = "3"
#: the exit status of a command `timeout -s KILL` stopped (the CLI forwards softer signals)
TIMED_OUT = 128 + 9


def refusal_text(uid: int) -> str:
    return f"belongs to uid {uid}"


@dataclass(frozen=True)
class Action:
    """A Docker CLI command on a container ``{c}`` (its name; ``{id}``: an id prefix)."""

    name: str
    argv: tuple[str, ...]
    #: the victim is running (else only created)
    running: bool = True
    #: the command stays attached when it is allowed (run under `timeout`)
    attaches: bool = False
    #: allowed by the proxy, it is still refused by the runtime shim (which lets no
    #: container join another's network namespace: each has its own user namespace)
    shim_refuses: bool = False
    #: the CLI prints the refusal's message (not for a hijack, whose 403 it reports as
    #: "unable to upgrade", nor for `cp`'s HEAD, which has no body): else it is read from
    #: the audit log
    cli_shows_message: bool = True


ACTIONS = [
    Action("exec", ("exec", "{c}", "sh", "-c", "echo pwned > /tmp/pwned")),
    Action("exec-by-id-prefix", ("exec", "{id}", "true")),
    Action("attach", ("attach", "--no-stdin", "{c}"), attaches=True, cli_shows_message=False),
    Action("start", ("start", "{c}"), running=False),
    Action("restart", ("restart", "-t", "0", "{c}")),
    Action("stop", ("stop", "-t", "0", "{c}")),
    Action("kill", ("kill", "-s", "WINCH", "{c}")),
    Action("pause", ("pause", "{c}")),
    Action("rename", ("rename", "{c}", "{c}-taken")),
    Action("rm", ("rm", "-f", "{c}")),
    Action("cp-out", ("cp", "{c}:/etc/hostname", "-")),
    Action("cp-in", ("cp", "/etc/hostname", "{c}:/tmp/"), cli_shows_message=False),
    Action("commit", ("commit", "{c}", "{c}-image")),
    Action("export", ("export", "-o", "/tmp/{c}.tar", "{c}")),
    Action("update", ("update", "--cpu-shares", "512", "{c}")),
    Action("logs", ("logs", "{c}")),
    Action(
        "network-container",
        ("run", "--rm", "--network", "container:{c}", "busybox", "true"),
        shim_refuses=True,
    ),
    Action("volumes-from", ("run", "--rm", "--volumes-from", "{c}", "busybox", "true")),
]


@dataclass(frozen=True)
class Victim:
    name: str
    id: str


def _victim(engine: EngineHandle, running: bool, user: str | None = TEST_USER) -> Victim:
    name = unique("eci-own")
    verb = ("run", "-d") if running else ("create",)
    cid = engine.docker(*verb, "--name", name, "busybox", "sleep", "3600", user=user)
    return Victim(name, cid.stdout.strip())


def _remove(engine: EngineHandle, victim: Victim) -> None:
    """By exact id through dockerd's own socket; the images a commit made, by exact name."""
    engine.docker("rm", "-f", victim.id, direct=True, check=False)
    engine.docker("rmi", f"{victim.name}-image", direct=True, check=False)
    Path(f"/tmp/{victim.name}.tar").unlink(missing_ok=True)


def _do(engine: EngineHandle, action: Action, victim: Victim, user: str | None) -> tuple[int, str]:
    """Run ``action`` on ``victim`` as ``user`` (None: root) through the proxy."""
    argv = [a.replace("{c}", victim.name).replace("{id}", victim.id[:12]) for a in action.argv]
    if action.attaches:
        argv = [
            "timeout", "--foreground", "-s", "KILL", ATTACH_SECONDS,
            "docker", "-H", engine.docker_host, *argv,
        ]  # fmt: skip
        if user is not None:
            argv = ["runuser", "-u", user, "--", *argv]
        result = run(argv, check=False)
    else:
        result = engine.docker(*argv, user=user, check=False)
    return result.returncode, result.stderr


#: how dockerd reports the runtime shim's refusal
SHIM_REFUSAL = "OCI runtime create failed: eci: "


def _audited_refusal(engine: EngineHandle, victim: Victim) -> str:
    """The message of the last refusal the audit log records about ``victim``."""
    records = [json.loads(line) for line in engine.layout.audit_log.read_text().splitlines()]
    about = [
        r
        for r in records
        if victim.name in r["reason"] or victim.id[:12] in r["route"] + r["reason"]
    ]
    assert about, f"no refusal about {victim.name} in the audit log"
    return str(about[-1]["reason"])


def _succeeded(action: Action, status: int, stderr: str) -> bool:
    """The action did what it does (for ``shim_refuses``: the proxy let it reach the
    runtime, which then refused it for its own reason)."""
    if action.shim_refuses:
        return SHIM_REFUSAL in stderr and ECI_PREFIX not in stderr.replace(SHIM_REFUSAL, "")
    return status == (TIMED_OUT if action.attaches else 0)


@pytest.fixture
def victim_of(engine: EngineHandle) -> Iterator[list[Victim]]:
    made: list[Victim] = []
    yield made
    for victim in made:
        _remove(engine, victim)


def _make(
    engine: EngineHandle, made: list[Victim], running: bool, user: str | None = TEST_USER
) -> Victim:
    victim = _victim(engine, running, user)
    made.append(victim)
    return victim


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_another_tenant_is_refused(
    engine: EngineHandle, victim_of: list[Victim], action: Action
) -> None:
    victim = _make(engine, victim_of, action.running)
    status, stderr = _do(engine, action, victim, SECOND_USER)
    assert not _succeeded(action, status, stderr), stderr
    refusal = _audited_refusal(engine, victim)
    assert refusal_text(OWNER.pw_uid) in refusal
    assert refusal.startswith(ECI_PREFIX)
    if action.cli_shows_message:
        assert f"Error response from daemon: {refusal}" in stderr, stderr
    else:
        assert "403" in stderr or "no such directory" in stderr, stderr
    state = json.loads(engine.docker("inspect", victim.id, direct=True).stdout)[0]["State"]
    assert state["Running"] is action.running  # nothing happened to it
    if action.name == "exec":
        probe = engine.docker("exec", victim.id, "cat", "/tmp/pwned", direct=True, check=False)
        assert probe.returncode != 0


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
@pytest.mark.parametrize("actor", [TEST_USER, None], ids=["owner", "root"])
def test_the_owner_and_root_can(
    engine: EngineHandle, victim_of: list[Victim], action: Action, actor: str | None
) -> None:
    victim = _make(engine, victim_of, action.running)
    status, stderr = _do(engine, action, victim, actor)
    assert _succeeded(action, status, stderr), stderr


def test_inspect_and_ps_stay_open(engine: EngineHandle, victim_of: list[Victim]) -> None:
    victim = _make(engine, victim_of, running=True)
    inspected = engine.docker("inspect", "--format", "{{.Id}}", victim.name, user=SECOND_USER)
    assert inspected.stdout.strip() == victim.id
    listed = engine.docker("ps", "-a", "--no-trunc", "--format", "{{.ID}}", user=SECOND_USER)
    assert victim.id in listed.stdout.split()


def test_containers_created_by_root_stay_open(
    engine: EngineHandle, victim_of: list[Victim]
) -> None:
    victim = _make(engine, victim_of, running=True, user=None)
    engine.docker("exec", victim.name, "true", user=SECOND_USER)


def test_an_exec_instance_of_the_owner_cannot_be_started_by_another(
    engine: EngineHandle, victim_of: list[Victim]
) -> None:
    """Exec ids are listed in `docker inspect`: the other tenant starts the owner's exec."""
    victim = _make(engine, victim_of, running=True)
    cmd = json.dumps({"Cmd": ["sh", "-c", "echo pwned > /tmp/pwned"]})
    created = api_as_user(engine, TEST_USER, "POST", f"/containers/{victim.id}/exec", cmd)
    exec_id = json.loads(created)["Id"]
    start = api_as_user(engine, SECOND_USER, "POST", f"/exec/{exec_id}/start", '{"Detach": true}')
    assert refusal_text(OWNER.pw_uid) in start
    probe = engine.docker("exec", victim.id, "cat", "/tmp/pwned", direct=True, check=False)
    assert probe.returncode != 0


def test_the_requester_gid_is_the_primary_group(
    engine: EngineHandle, victim_of: list[Victim]
) -> None:
    """`newgrp docker` (here: runuser -g) changes the client's egid, not who it is."""
    name = unique("eci-newgrp")
    argv = ["runuser", "-u", TEST_USER, "-g", "docker", "--", "docker", "-H", engine.docker_host]
    cid = run([*argv, "run", "-d", "--name", name, "busybox", "sleep", "3600"]).stdout.strip()
    victim_of.append(Victim(name, cid))
    labels = json.loads(engine.docker("inspect", "--format", "{{json .Config.Labels}}", cid).stdout)
    assert labels["io.eci.requester"] == f"{OWNER.pw_uid}:{OWNER.pw_gid}"


@pytest.mark.parametrize("runner", [SECOND_USER, None], ids=["other-tenant", "root"])
def test_a_committed_image_carries_no_ownership_into_its_containers(
    engine: EngineHandle, victim_of: list[Victim], runner: str | None
) -> None:
    """The owner commits a container (the image keeps its requester label); whoever runs the
    image owns the new container, and root's is nobody's (labelled 0:0): the image's label
    never speaks for a container."""
    victim = _make(engine, victim_of, running=True)
    image = f"{victim.name}-image"
    engine.docker("commit", victim.name, image)
    image_labels = engine.docker("image", "inspect", "--format", "{{json .Config.Labels}}", image)
    assert json.loads(image_labels.stdout)["io.eci.requester"] == f"{OWNER.pw_uid}:{OWNER.pw_gid}"
    name = unique("eci-from-commit")
    cid = engine.docker("run", "-d", "--name", name, image, "sleep", "600", user=runner)
    victim_of.append(Victim(name, cid.stdout.strip()))
    labels = engine.docker("inspect", "--format", "{{json .Config.Labels}}", name).stdout
    runner_ids = pwd.getpwnam(runner) if runner else None
    expected = f"{runner_ids.pw_uid}:{runner_ids.pw_gid}" if runner_ids else "0:0"
    assert json.loads(labels)["io.eci.requester"] == expected
    other = engine.docker("exec", name, "true", user=SECOND_USER, check=False)
    assert other.returncode == 0, other.stderr  # the runner's (or nobody's), never the owner's
    owner = engine.docker("exec", name, "true", user=TEST_USER, check=False)
    assert (owner.returncode == 0) is (runner is None), owner.stderr


@dataclass(frozen=True)
class VolumeCase:
    name: str
    #: the owner makes the volume with `docker volume create` (labelled), else a container
    #: of the owner's makes it (dockerd gives it no label: it is the owner's while in use)
    created: bool


VOLUME_CASES = [VolumeCase("volume-created", True), VolumeCase("volume-of-a-container", False)]
SECRET = "s3cret-of-the-owner"


def _owned_volume(engine: EngineHandle, made: list[Victim], case: VolumeCase) -> str:
    volume = unique("eci-vol")
    if case.created:
        engine.docker("volume", "create", volume)
    write = f"echo {SECRET} > /data/secret" + ("" if case.created else "; sleep 600")
    verb = ("run", "--rm") if case.created else ("run", "-d")
    cid = engine.docker(*verb, "-v", f"{volume}:/data", "busybox", "sh", "-c", write)
    if not case.created:
        made.append(Victim(volume, cid.stdout.strip()))
    return volume


@pytest.fixture
def volumes(engine: EngineHandle) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for volume in made:
        engine.docker("volume", "rm", "-f", volume, direct=True, check=False)


def _read_volume(engine: EngineHandle, volume: str, user: str | None) -> tuple[int, str, str]:
    result = engine.docker(
        "run", "--rm", "-v", f"{volume}:/x", "busybox", "cat", "/x/secret", user=user, check=False
    )
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize("case", VOLUME_CASES, ids=lambda c: c.name)
def test_another_tenant_cannot_mount_or_remove_the_owner_s_volume(
    engine: EngineHandle, victim_of: list[Victim], volumes: list[str], case: VolumeCase
) -> None:
    """A volume holds what `--volumes-from` would give: mounting it by name is refused too."""
    volume = _owned_volume(engine, victim_of, case)
    volumes.append(volume)
    _, out, stderr = _read_volume(engine, volume, SECOND_USER)
    assert SECRET not in out
    assert f"volume '{volume}' {refusal_text(OWNER.pw_uid)}" in stderr, stderr
    removed = engine.docker("volume", "rm", volume, user=SECOND_USER, check=False)
    assert removed.returncode != 0
    assert f"volume '{volume}' {refusal_text(OWNER.pw_uid)}" in removed.stderr
    for actor in (TEST_USER, None):  # the owner and root
        assert _read_volume(engine, volume, actor)[1].strip() == SECRET


BIND = "/var/run/docker.sock:/var/run/docker.sock"


def test_containers_made_through_a_granted_socket_belong_to_its_owner(
    engine: EngineHandle, victim_of: list[Victim]
) -> None:
    """A container holding a granted socket acts for the user who created it: what it creates
    is that user's, not its own range's (a range is reused by the next tenant)."""
    name = unique("granted")
    with settings_applied(engine, socket_settings()):
        holder = engine.docker("run", "-d", "-v", BIND, "docker:cli", "sleep", "600").stdout
        victim_of.append(Victim("holder", holder.strip()))
        engine.docker("exec", holder.strip(), "docker", "run", "-d", "--name", name, "busybox",
                      "sleep", "600")  # fmt: skip
        cid = engine.docker("inspect", "--format", "{{.Id}}", name).stdout.strip()
        victim_of.append(Victim(name, cid))
        labels = engine.docker("inspect", "--format", "{{json .Config.Labels}}", cid).stdout
        assert json.loads(labels)["io.eci.requester"] == f"{OWNER.pw_uid}:{OWNER.pw_gid}"
        engine.docker("exec", name, "true")  # its owner's
        other = engine.docker("exec", name, "true", user=SECOND_USER, check=False)
        assert refusal_text(OWNER.pw_uid) in other.stderr


OWNERSHIP_OFF = {
    **ECI_ON_LOCKED,
    "enhancedContainerIsolation": {"value": True, "locked": True, "containerOwnership": False},
}


@pytest.fixture(scope="class")
def ownership_off(engine: EngineHandle) -> Iterator[None]:
    reload_settings(engine, OWNERSHIP_OFF)
    try:
        yield
    finally:
        reload_settings(engine)


@pytest.mark.usefixtures("ownership_off")
class TestWithOwnershipOff:
    """The control: the admin turned ownership off; every refused action works again."""

    @pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
    def test_another_tenant_can(
        self, engine: EngineHandle, victim_of: list[Victim], action: Action
    ) -> None:
        victim = _make(engine, victim_of, action.running)
        status, stderr = _do(engine, action, victim, SECOND_USER)
        assert _succeeded(action, status, stderr), stderr

    @pytest.mark.parametrize("case", VOLUME_CASES, ids=lambda c: c.name)
    def test_another_tenant_can_mount_the_volume(
        self, engine: EngineHandle, victim_of: list[Victim], volumes: list[str], case: VolumeCase
    ) -> None:
        volume = _owned_volume(engine, victim_of, case)
        volumes.append(volume)
        assert _read_volume(engine, volume, SECOND_USER)[1].strip() == SECRET
