"""The same workload through the proxy and directly gives the same results (Docker CLI).

Every test runs its workload twice, once on the user socket (the policing proxy) and once on
dockerd's raw socket, with the CLI as root both times, and compares what a user sees: exit
codes, stdout/stderr bytes, file contents, tar member lists, image ids where deterministic.
Both CLIs (20.10 and 28) are used wherever they could differ in what they send.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from tests.compat.twopaths import (
    Made,
    Pushed,
    Streaming,
    assert_same,
    docker_argv,
    docker_env,
    fd_count,
    make_tar,
    on_both,
    pattern_bytes,
    pid_of,
    run_in_pty,
    sh,
    sha256,
    tar_file,
    tar_members,
    wait_for,
    without_ids,
)
from tests.support import DOCKER_CLIS, EngineHandle

pytestmark = pytest.mark.engine

CLI_NAMES = {"/usr/bin/docker": "cli20", "/usr/local/bin/docker": "cli28"}
clis = pytest.mark.parametrize("cli", DOCKER_CLIS, ids=lambda c: CLI_NAMES.get(c, c))
SEQ = b"".join(b"%d\n" % i for i in range(1, 1_000_001))  # what the sleeper wrote to /seq
Members = list[tuple[str, str, int]]


def _legacy_build_env(cli: str) -> dict[str, str]:
    """CLI 20.10 uses BuildKit when dockerd advertises it (the proxy refuses BuildKit solves):
    the classic builder needs DOCKER_BUILDKIT=0. CLI 28 without the buildx plugin falls back to
    the classic builder by itself, so it runs as a user would run it, with no variable."""
    return {"DOCKER_BUILDKIT": "0"} if cli == "/usr/bin/docker" else {}


# ---- run -----------------------------------------------------------------------------------
@clis
def test_run_exit_code_stdout_stderr(engine: EngineHandle, cli: str) -> None:
    def workload(path: str) -> tuple[int, bytes, bytes]:
        script = "echo out; echo err >&2; exit 3"
        r = sh(engine, path, "run", "--rm", "busybox", "sh", "-c", script, cli=cli, check=False)
        return r.returncode, r.stdout, r.stderr

    rc, out, err = assert_same(on_both(workload))
    assert (rc, out) == (3, b"out\n")
    assert err.endswith(b"err\n")


def test_run_streams_20mb_unchanged(engine: EngineHandle) -> None:
    """20 MB of random bytes out of a container, compared with the sha256 the container
    computed itself (on stderr)."""
    size = 20_000_000
    script = f"head -c {size} /dev/urandom > /tmp/f; sha256sum /tmp/f >&2; cat /tmp/f"

    def workload(path: str) -> tuple[int, int, bool]:
        r = sh(engine, path, "run", "--rm", "busybox", "sh", "-c", script)
        return r.returncode, len(r.stdout), f"{sha256(r.stdout)}  /tmp/f".encode() in r.stderr

    assert assert_same(on_both(workload)) == (0, size, True)


@clis
def test_run_i_with_piped_stdin_half_closes(engine: EngineHandle, cli: str) -> None:
    blob = pattern_bytes(5_000_000)

    def workload(path: str) -> tuple[int, bytes, int, bytes]:
        small = sh(engine, path, "run", "-i", "--rm", "busybox", "cat", cli=cli, input=b"data\n")
        big = sh(engine, path, "run", "-i", "--rm", "busybox", "sha256sum", cli=cli, input=blob)
        return small.returncode, small.stdout, big.returncode, big.stdout

    assert assert_same(on_both(workload)) == (0, b"data\n", 0, f"{sha256(blob)}  -\n".encode())


@clis
def test_run_it_on_a_terminal(engine: EngineHandle, cli: str) -> None:
    script = "echo ready; read x; echo got:$x; exit 7"

    def workload(path: str) -> tuple[int, bytes]:
        argv = docker_argv(
            engine, path, "run", "-it", "--rm", "busybox", "sh", "-c", script, cli=cli
        )
        return run_in_pty(argv, b"abc\r", after=b"ready")

    rc, out = assert_same(on_both(workload))
    assert rc == 7
    assert out.endswith(b"ready\r\nabc\r\ngot:abc\r\n")


# ---- exec ----------------------------------------------------------------------------------
@clis
def test_exec_it_on_a_terminal(engine: EngineHandle, sleeper: str, cli: str) -> None:
    def workload(path: str) -> list[tuple[int, bytes]]:
        def exec_it(script: str, typed: bytes = b"") -> tuple[int, bytes]:
            argv = docker_argv(engine, path, "exec", "-it", sleeper, "sh", "-c", script, cli=cli)
            return run_in_pty(argv, typed, after=b"ready")

        return [
            exec_it('test -t 0 && test -t 1 && echo "tty $TERM"'),
            exec_it("echo ready; read x; echo got:$x; exit 7", b"abc\r"),
            exec_it("echo ready; sleep 30; echo not-interrupted", b"\x03"),  # ^C: SIGINT inside
        ]

    tty, typed, interrupted = assert_same(on_both(workload))
    assert tty == (0, b"tty xterm\r\n")
    assert typed == (7, b"ready\r\nabc\r\ngot:abc\r\n")
    assert interrupted[0] == 130
    assert b"not-interrupted" not in interrupted[1]


@clis
def test_exec_i_with_piped_stdin(engine: EngineHandle, sleeper: str, cli: str) -> None:
    blob = pattern_bytes(5_000_000, seed="exec")

    def workload(path: str) -> tuple[bytes, bytes, int]:
        small = sh(engine, path, "exec", "-i", sleeper, "cat", cli=cli, input=b"data\n")
        big = sh(engine, path, "exec", "-i", sleeper, "sha256sum", cli=cli, input=blob)
        failed = sh(engine, path, "exec", sleeper, "sh", "-c", "exit 9", cli=cli, check=False)
        return small.stdout, big.stdout, failed.returncode

    assert assert_same(on_both(workload)) == (b"data\n", f"{sha256(blob)}  -\n".encode(), 9)


# ---- attach and logs -----------------------------------------------------------------------
@clis
def test_attach_to_running_container(engine: EngineHandle, made: Made, cli: str) -> None:
    def workload(path: str) -> tuple[int, bytes, int, bytes]:
        name = made.container()
        script = "sleep 1; echo hello; exit 5"
        sh(engine, path, "run", "-d", "--name", name, "busybox", "sh", "-c", script, cli=cli)
        attached = sh(engine, path, "attach", name, cli=cli, check=False)

        # stdin too; kept open until the container has answered (dockerd ends an attach whose
        # stdin closes, racing the container's last output, on both paths alike)
        name = made.container()
        script = "read x; echo got:$x; exit 6"
        sh(engine, path, "run", "-d", "-i", "--name", name, "busybox", "sh", "-c", script, cli=cli)
        with Streaming(docker_argv(engine, path, "attach", name, cli=cli), subprocess.PIPE) as cmd:
            cmd.write(b"abc\n")
            typed = cmd.rest()
            cmd.close_stdin()
            typed_rc = cmd.wait()
        return attached.returncode, attached.stdout, typed_rc, typed

    assert assert_same(on_both(workload)) == (5, b"hello\n", 6, b"got:abc\n")


@clis
def test_logs_follow_ends_with_the_container(engine: EngineHandle, made: Made, cli: str) -> None:
    script = "for i in 1 2 3; do echo $i; echo e$i >&2; sleep 0.3; done"

    def workload(path: str) -> tuple[int, bytes, bytes]:
        name = made.container()
        sh(engine, path, "run", "-d", "--name", name, "busybox", "sh", "-c", script, cli=cli)
        r = sh(engine, path, "logs", "-f", name, cli=cli, timeout=30)
        return r.returncode, r.stdout, r.stderr

    assert assert_same(on_both(workload)) == (0, b"1\n2\n3\n", b"e1\ne2\ne3\n")


@clis
def test_logs_follow_interrupted_leaves_no_connection(
    engine: EngineHandle, made: Made, cli: str
) -> None:
    """^C on `logs -f`: the proxy closes its upstream connection, so neither it nor dockerd
    keeps a descriptor of the stream (counted in /proc/<pid>/fd)."""
    proxy_pid, dockerd_pid = pid_of(engine, "proxy"), pid_of(engine, "dockerd")
    name = made.container()
    script = "while true; do echo tick; sleep 0.1; done"
    sh(engine, "direct", "run", "-d", "--name", name, "busybox", "sh", "-c", script)

    def workload(path: str) -> tuple[bytes, int, bool, bool]:
        baseline = fd_count(proxy_pid), fd_count(dockerd_pid)
        with Streaming(docker_argv(engine, path, "logs", "-f", name, cli=cli)) as cmd:
            first = cmd.line()
            time.sleep(0.3)  # a few more lines stream
            rc = cmd.interrupt()
        proxy_back = wait_for(lambda: fd_count(proxy_pid) <= baseline[0])
        dockerd_back = wait_for(lambda: fd_count(dockerd_pid) <= baseline[1])
        return first, rc, proxy_back, dockerd_back

    first, rc, proxy_back, dockerd_back = assert_same(on_both(workload))
    assert first == b"tick\n"
    assert rc != 0  # the CLI's own exit on SIGINT (130 for CLI 28, the signal for 20.10)
    assert proxy_back, "the proxy kept a connection of the interrupted `logs -f`"
    assert dockerd_back, "dockerd kept the interrupted `logs -f` stream open"


# ---- cp ------------------------------------------------------------------------------------
@clis
def test_cp_in_to_created_and_out(
    engine: EngineHandle, made: Made, tmp_path: Path, cli: str
) -> None:
    blob = pattern_bytes(6_000_000, seed="cp")
    tarred = pattern_bytes(3_000_000, seed="cp-tar")
    (tmp_path / "blob").write_bytes(blob)

    def workload(path: str) -> tuple[bytes, bool, Members, bool]:
        name = made.container()
        sh(engine, path, "create", "--name", name, "busybox", "sha256sum", "/blob", "/dir/t")
        sh(engine, path, "cp", str(tmp_path / "blob"), f"{name}:/blob", cli=cli)
        sh(engine, path, "cp", "-", f"{name}:/", cli=cli, input=make_tar({"dir/t": tarred}))
        sums = sh(engine, path, "start", "-a", name, cli=cli).stdout
        out = tmp_path / f"out-{path}"
        sh(engine, path, "cp", f"{name}:/blob", str(out), cli=cli)
        as_tar = sh(engine, path, "cp", f"{name}:/dir", "-", cli=cli).stdout
        return (
            sums,
            out.read_bytes() == blob,
            tar_members(as_tar),
            tar_file(as_tar, "dir/t") == tarred,
        )

    sums, out_equal, members, tar_equal = assert_same(on_both(workload))
    assert sums == f"{sha256(blob)}  /blob\n{sha256(tarred)}  /dir/t\n".encode()
    assert out_equal
    assert members == [("dir", "dir", 0), ("dir/t", "file", len(tarred))]
    assert tar_equal


@clis
def test_cp_out_of_running_container(
    engine: EngineHandle, sleeper: str, tmp_path: Path, cli: str
) -> None:
    def workload(path: str) -> tuple[bool, Members]:
        out = tmp_path / f"seq-{path}"
        sh(engine, path, "cp", f"{sleeper}:/seq", str(out), cli=cli)
        as_tar = sh(engine, path, "cp", f"{sleeper}:/seq", "-", cli=cli).stdout
        return out.read_bytes() == SEQ, tar_members(as_tar)

    assert assert_same(on_both(workload)) == (True, [("seq", "file", len(SEQ))])


@clis
def test_cp_into_a_running_container_works_through_the_proxy(
    engine: EngineHandle, sleeper: str, tmp_path: Path, cli: str
) -> None:
    """dockerd itself cannot write into a running eci container (EOVERFLOW through its
    idmapped root filesystem): that is the direct path. Through the proxy the upload is
    extracted inside the container, and the Docker CLI sees a plain success."""
    (tmp_path / "small").write_bytes(b"small\n")
    target = f"{sleeper}:/tmp/"
    direct = sh(engine, "direct", "cp", str(tmp_path / "small"), target, cli=cli, check=False)
    assert direct.returncode != 0
    assert b"value too large for defined data type" in direct.stderr
    try:
        proxied = sh(engine, "proxy", "cp", str(tmp_path / "small"), target, cli=cli, check=False)
        assert (proxied.returncode, proxied.stderr) == (0, b"")
        there = sh(engine, "direct", "exec", sleeper, "cat", "/tmp/small").stdout
        assert there == b"small\n"
    finally:
        sh(engine, "direct", "exec", sleeper, "rm", "-f", "/tmp/small")


# ---- build, commit, export/import, save/load -----------------------------------------------
@clis
def test_build_classic_then_run(engine: EngineHandle, made: Made, tmp_path: Path, cli: str) -> None:
    blob = pattern_bytes(5_000_000, seed="build")
    (tmp_path / "blob").write_bytes(blob)
    (tmp_path / "Dockerfile").write_text(
        'FROM busybox\nCOPY blob /blob\nRUN sha256sum /blob > /sum\nCMD ["cat", "/sum"]\n'
    )
    env = _legacy_build_env(cli)

    def workload(path: str) -> tuple[int, bytes, bytes, list[str], bytes]:
        tag = made.image()
        args = ("build", "--no-cache", "-t", tag, str(tmp_path))
        r = sh(engine, path, *args, cli=cli, env=env, check=False)
        if r.returncode != 0:
            return r.returncode, r.stdout, r.stderr, [], b""
        inspect = ("image", "inspect", "-f", "{{json .RootFS.Layers}}", tag)
        layers = json.loads(sh(engine, path, *inspect).stdout)
        ran = sh(engine, path, "run", "--rm", tag, cli=cli).stdout
        # base and COPY layers are content-addressed; the RUN layer carries build-time mtimes
        return 0, without_ids(r.stdout, tag), r.stderr, layers[:2], ran

    rc, out, _, layers, ran = assert_same(on_both(workload))
    assert rc == 0
    assert b"Step 3/4 : RUN sha256sum /blob > /sum" in out
    assert len(layers) == 2
    assert ran == f"{sha256(blob)}  /blob\n".encode()


@clis
def test_commit_round_trip(engine: EngineHandle, made: Made, cli: str) -> None:
    def workload(path: str) -> tuple[bytes, bytes, int, bytes]:
        name, tag = made.container(), made.image()
        script = "echo committed > /c"
        sh(engine, path, "run", "--name", name, "busybox", "sh", "-c", script, cli=cli)
        committed = sh(engine, path, "commit", "--change", 'CMD ["cat", "/c"]', name, tag, cli=cli)
        ran = sh(engine, path, "run", "--rm", tag, cli=cli).stdout
        inspect = ("image", "inspect", "-f", "{{len .RootFS.Layers}} {{json .Config.Cmd}}", tag)
        return without_ids(committed.stdout), ran, sh(engine, path, *inspect, cli=cli).stdout

    result = assert_same(on_both(workload))
    assert result == (b"sha256:<id>\n", b"committed\n", b'2 ["cat","/c"]\n')


def _pipe(first: list[str], second: list[str]) -> tuple[int, int, bytes]:
    """``first | second`` through a real pipe: (first's exit, second's exit, second's out)."""
    producer = subprocess.Popen(first, stdout=subprocess.PIPE, env=docker_env())
    assert producer.stdout is not None
    try:
        consumer = subprocess.run(
            second, stdin=producer.stdout, capture_output=True, env=docker_env(), timeout=120
        )
    finally:
        producer.stdout.close()
        producer.wait(timeout=60)
    return producer.returncode, consumer.returncode, consumer.stdout


@clis
def test_export_import_round_trip(engine: EngineHandle, made: Made, cli: str) -> None:
    def workload(path: str) -> tuple[Members, int, int, bytes, bytes]:
        name, tag = made.container(), made.image()
        script = "echo exported > /marker"
        sh(engine, path, "run", "--name", name, "busybox", "sh", "-c", script, cli=cli)
        exported = sh(engine, path, "export", name, cli=cli).stdout
        rc_export, rc_import, imported = _pipe(
            docker_argv(engine, path, "export", name, cli=cli),
            docker_argv(engine, path, "import", "-", tag, cli=cli),
        )
        ran = sh(engine, path, "run", "--rm", tag, "cat", "/marker", cli=cli).stdout
        return tar_members(exported), rc_export, rc_import, without_ids(imported), ran

    members, *rest = assert_same(on_both(workload))
    assert rest == [0, 0, b"sha256:<id>\n", b"exported\n"]
    assert ("marker", "file", len(b"exported\n")) in members
    assert any(m[:2] == ("bin/busybox", "file") for m in members), members


@clis
def test_save_load_round_trip(engine: EngineHandle, made: Made, cli: str) -> None:
    tag = made.image()  # the same tag on both paths, one after the other
    busybox_id = sh(engine, "direct", "image", "inspect", "-f", "{{.Id}}", "busybox").stdout

    def workload(path: str) -> tuple[str, Members, int, int, bytes, bytes]:
        sh(engine, path, "tag", "busybox", tag, cli=cli)
        saved = sh(engine, path, "save", tag, cli=cli).stdout
        rc_save, rc_load, loaded = _pipe(
            docker_argv(engine, path, "save", tag, cli=cli),
            docker_argv(engine, path, "load", cli=cli),
        )
        sh(engine, path, "rmi", tag, cli=cli)
        again = sh(engine, path, "load", cli=cli, input=saved).stdout
        image_id = sh(engine, path, "image", "inspect", "-f", "{{.Id}}", tag, cli=cli).stdout
        sh(engine, path, "rmi", tag, cli=cli)
        return sha256(saved), tar_members(saved), rc_save, rc_load, loaded + again, image_id

    _, members, rc_save, rc_load, loaded, image_id = assert_same(on_both(workload))
    assert (rc_save, rc_load) == (0, 0)
    assert "manifest.json" in [m[0] for m in members]
    assert loaded == f"Loaded image: {tag}\n".encode() * 2
    assert image_id == busybox_id


# ---- events --------------------------------------------------------------------------------
EVENT_FORMAT = "{{.Type}} {{.Action}}"


@clis
def test_events_since_until(engine: EngineHandle, made: Made, cli: str) -> None:
    def workload(path: str) -> list[str]:
        name = made.container()
        since = time.time() - 0.5
        sh(engine, path, "run", "--rm", "--name", name, "busybox", "true", cli=cli)
        until = time.time() + 0.5
        window = ("--since", f"{since:.3f}", "--until", f"{until:.3f}")
        only = ("--filter", f"container={name}", "--format", EVENT_FORMAT)
        return sh(engine, path, "events", *window, *only, cli=cli).stdout.decode().splitlines()

    events = assert_same(on_both(workload))
    for action in ("create", "start", "die", "destroy"):
        assert f"container {action}" in events, events


@clis
def test_events_stream_live(engine: EngineHandle, made: Made, cli: str) -> None:
    """`docker events` delivers each event as it happens: a container's start event
    arrives while the container is still running."""

    def workload(path: str) -> tuple[list[str], bool]:
        name = made.container()
        since = ("--since", f"{time.time() - 0.5:.3f}")  # nothing is missed before it subscribes
        only = ("--filter", f"container={name}", "--format", EVENT_FORMAT)
        seen: list[str] = []
        running_at_start = False
        with Streaming(docker_argv(engine, path, "events", *since, *only, cli=cli)) as cmd:
            sh(engine, path, "run", "-d", "--rm", "--name", name, "busybox", "sleep", "1", cli=cli)
            while (line := cmd.line().decode().strip()) and line != "container destroy":
                seen.append(line)
                if line == "container start":
                    running = sh(engine, "direct", "inspect", "-f", "{{.State.Running}}", name)
                    running_at_start = running.stdout == b"true\n"
            seen.append(line)
            cmd.interrupt()
        return seen, running_at_start

    seen, running_at_start = assert_same(on_both(workload))
    assert seen[0] == "container create"
    assert seen[-1] == "container destroy"
    assert running_at_start


# ---- pull from the local registry ----------------------------------------------------------
# shown or not, by timing (the CLI drops progress lines a later status overtakes)
_PROGRESS_TIMING = (b"Verifying Checksum", b"Waiting", b"Download complete", b"Downloading")


@clis
def test_pull_from_local_registry(engine: EngineHandle, pushed: Pushed, cli: str) -> None:
    def workload(path: str) -> tuple[int, list[bytes], bytes]:
        r = sh(engine, path, "pull", pushed.ref, cli=cli, check=False)
        image_id = sh(engine, path, "image", "inspect", "-f", "{{.Id}}", pushed.ref, check=False)
        sh(engine, "direct", "rmi", pushed.ref, check=False)
        lines = [ln for ln in r.stdout.splitlines() if not any(n in ln for n in _PROGRESS_TIMING)]
        return r.returncode, lines, image_id.stdout.strip()

    rc, lines, image_id = assert_same(on_both(workload))
    assert rc == 0
    assert any(line.endswith(b": Pull complete") for line in lines), lines
    assert f"Status: Downloaded newer image for {pushed.ref}".encode() in lines
    assert image_id == pushed.image_id.encode()


# ---- read-only commands --------------------------------------------------------------------
_INFO_VOLATILE = {
    "SystemTime",
    "NGoroutines",
    "NFd",
    "NEventsListener",
    "Containers",
    "ContainersRunning",
    "ContainersPaused",
    "ContainersStopped",
    "Images",
}


@clis
def test_version_info_ps_inspect_stats(
    engine: EngineHandle, made: Made, sleeper: str, cli: str
) -> None:
    created = made.container()
    sh(engine, "direct", "create", "--name", created, "busybox", "true")
    ps_format = "{{.ID}}|{{.Image}}|{{.Command}}|{{.Names}}|{{.Status}}"

    def workload(path: str) -> dict[str, object]:
        def out(*args: str) -> bytes:
            return sh(engine, path, *args, cli=cli).stdout

        info = json.loads(out("info", "--format", "{{json .}}"))
        only = ("--filter", f"name=^/{created}$")
        return {
            "version": json.loads(out("version", "--format", "{{json .}}")),
            "info": {k: v for k, v in info.items() if k not in _INFO_VOLATILE},
            "info-text": b"Default Runtime: sysbox-runc" in out("info"),
            "ps": out("ps", "-a", "--no-trunc", *only, "--format", ps_format),
            "ps-running": sleeper.encode() in out("ps"),
            "inspect": json.loads(out("inspect", created)),
            "image-inspect": json.loads(out("image", "inspect", "busybox")),
            "stats": out("stats", "--no-stream", "--format", "{{.Name}} {{.ID}}", sleeper),
            "df": bool(out("system", "df")),
        }

    result = assert_same(on_both(workload))
    assert result["info-text"] is True
    assert result["ps-running"] is True
    assert result["stats"].startswith(f"{sleeper} ".encode())
