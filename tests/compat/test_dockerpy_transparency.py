"""The same workload through the proxy and directly gives the same results (docker-py).

docker-py speaks the API with requests/urllib3: pooled keep-alive connections, its own
hijacking of attach/exec sockets, streamed JSON. Each workload runs on a client of its own
for each path (closed afterwards: pytest turns unclosed-socket warnings into errors).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import docker
import pytest
from docker.types.daemon import CancellableStream
from docker.utils.socket import consume_socket_output, demux_adaptor, frames_iter
from tests.compat.twopaths import (
    Made,
    Pushed,
    assert_same,
    client_on,
    fd_count,
    make_tar,
    on_both,
    pattern_bytes,
    pid_of,
    sha256,
    tar_file,
    wait_for,
    without_ids,
)
from tests.support import EngineHandle

pytestmark = pytest.mark.engine


def _close(stream: CancellableStream) -> None:
    """Close a docker-py stream for good: its close() shuts the socket down but leaves the
    response (and so the socket's file descriptor) to the garbage collector."""
    stream.close()
    stream._response.close()


def test_ping_and_version(engine: EngineHandle) -> None:
    def workload(path: str) -> tuple[bool, dict[str, object], str]:
        with client_on(engine, path) as client:
            return client.ping(), client.version(), client.info()["DefaultRuntime"]

    ping, version, runtime = assert_same(on_both(workload))
    assert ping is True
    assert version["ApiVersion"] == "1.41"
    assert runtime == "sysbox-runc"


def test_containers_run_with_output(engine: EngineHandle, made: Made) -> None:
    def workload(path: str) -> tuple[bytes, bytes, int, bytes, int, bytes]:
        with client_on(engine, path) as client:
            script = ["sh", "-c", "echo out; echo err >&2"]
            out = client.containers.run("busybox", script, name=made.container(), remove=True)
            err = client.containers.run(
                "busybox", script, name=made.container(), remove=True, stdout=False, stderr=True
            )
            with pytest.raises(docker.errors.ContainerError) as failed:
                client.containers.run(
                    "busybox", ["sh", "-c", "echo bad >&2; exit 3"], name=made.container()
                )
            container = client.containers.run(
                "busybox",
                ["head", "-c", "5000000", "/dev/zero"],
                name=made.container(),
                detach=True,
            )
            status = container.wait()["StatusCode"]
            logs = container.logs()
            return out, err, failed.value.exit_status, failed.value.stderr, status, logs

    out, err, exit_status, stderr, status, logs = assert_same(on_both(workload))
    assert (out, err) == (b"out\n", b"err\n")
    assert (exit_status, stderr) == (3, b"bad\n")
    assert (status, logs) == (0, bytes(5_000_000))


def test_exec_run(engine: EngineHandle, sleeper: str) -> None:
    blob = pattern_bytes(4_000_000, seed="docker-py exec")

    def workload(path: str) -> dict[str, object]:
        with client_on(engine, path) as client:
            container = client.containers.get(sleeper)
            script = ["sh", "-c", "echo hi; echo err >&2; exit 4"]
            plain = container.exec_run(script)
            demuxed = container.exec_run(script, demux=True)
            tty = container.exec_run(["sh", "-c", "test -t 1 && echo tty"], tty=True)
            streamed = container.exec_run(["sh", "-c", "seq 1 3"], stream=True).output
            streamed_out = b"".join(streamed)
            _close(streamed)
            # stdin through docker-py's hijacked socket, half-closed when written
            exec_id = client.api.exec_create(sleeper, ["sha256sum"], stdin=True)["Id"]
            raw = client.api.exec_start(exec_id, socket=True)
            sock = raw._sock
            try:
                sock.sendall(blob)
                sock.shutdown(socket.SHUT_WR)
                frames = (demux_adaptor(*frame) for frame in frames_iter(raw, tty=False))
                stdin_out = consume_socket_output(frames, demux=True)
            finally:
                raw.close()
                sock.close()
            stdin_exit = client.api.exec_inspect(exec_id)["ExitCode"]
            return {
                # stdout and stderr are separate pipes, interleaved by dockerd in either order
                "plain": (plain.exit_code, sorted(plain.output.splitlines())),
                "demuxed": tuple(demuxed),
                "tty": tuple(tty),
                "streamed": streamed_out,
                "stdin": (stdin_exit, stdin_out),
            }

    result = assert_same(on_both(workload))
    assert result["plain"] == (4, [b"err", b"hi"])
    assert result["demuxed"] == (4, (b"hi\n", b"err\n"))
    assert result["tty"] == (0, b"tty\r\n")
    assert result["streamed"] == b"1\n2\n3\n"
    assert result["stdin"] == (0, (f"{sha256(blob)}  -\n".encode(), None))


def test_logs_stream(engine: EngineHandle, made: Made) -> None:
    """logs(stream=True, follow=True) ends with the container; one closed early by the
    client leaves no connection behind in the proxy or dockerd."""
    proxy_pid, dockerd_pid = pid_of(engine, "proxy"), pid_of(engine, "dockerd")
    ticker = made.container()
    with client_on(engine, "direct") as client:
        script = ["sh", "-c", "while true; do echo tick; sleep 0.1; done"]
        client.containers.run("busybox", script, name=ticker, detach=True)

    def workload(path: str) -> tuple[bytes, bytes, bool, bool]:
        with client_on(engine, path) as client:
            script = ["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.3; done"]
            container = client.containers.run("busybox", script, name=made.container(), detach=True)
            stream = container.logs(stream=True, follow=True)
            followed = b"".join(stream)
            _close(stream)

            ticking = client.containers.get(ticker)
            # docker-py inspects the container while the stream is open, on a second pooled
            # connection that stays open: one stream first, so the baseline counts it
            stream = ticking.logs(stream=True, follow=True)
            next(stream)
            _close(stream)
            baseline = fd_count(proxy_pid), fd_count(dockerd_pid)
            stream = ticking.logs(stream=True, follow=True)
            first = next(stream)
            _close(stream)
            proxy_back = wait_for(lambda: fd_count(proxy_pid) <= baseline[0])
            dockerd_back = wait_for(lambda: fd_count(dockerd_pid) <= baseline[1])
            return followed, first, proxy_back, dockerd_back

    followed, first, proxy_back, dockerd_back = assert_same(on_both(workload))
    assert followed == b"1\n2\n3\n"
    assert first.startswith(b"tick\n")
    assert proxy_back, "the proxy kept the connection of a closed logs stream"
    assert dockerd_back, "dockerd kept a closed logs stream open"


def test_put_and_get_archive(engine: EngineHandle, made: Made) -> None:
    blob = pattern_bytes(6_000_000, seed="docker-py archive")

    def workload(path: str) -> tuple[bool, dict[str, object], bool, bytes]:
        with client_on(engine, path) as client:
            container = client.containers.create(
                "busybox", ["sha256sum", "/data/blob"], name=made.container()
            )
            put = container.put_archive("/", make_tar({"data/blob": blob}))
            chunks, stat = container.get_archive("/data/blob")
            back = tar_file(b"".join(chunks), "blob")
            container.start()
            container.wait()
            stat = {k: v for k, v in stat.items() if k != "mtime"}
            return put, stat, back == blob, container.logs()

    put, stat, same_content, logs = assert_same(on_both(workload))
    assert put is True
    assert (stat["name"], stat["size"]) == ("blob", len(blob))
    assert same_content
    assert logs == f"{sha256(blob)}  /data/blob\n".encode()


def test_images_build(engine: EngineHandle, made: Made, tmp_path: Path) -> None:
    blob = pattern_bytes(3_000_000, seed="docker-py build")
    (tmp_path / "blob").write_bytes(blob)
    (tmp_path / "Dockerfile").write_text(
        'FROM busybox\nCOPY blob /blob\nRUN sha256sum /blob > /sum\nCMD ["cat", "/sum"]\n'
    )

    def workload(path: str) -> tuple[list[bytes], list[str], bytes]:
        tag = made.image()
        with client_on(engine, path) as client:
            image, logs = client.images.build(path=str(tmp_path), tag=tag, nocache=True, rm=True)
            lines = [without_ids(str(e.get("stream", "")).encode(), tag) for e in logs]
            ran = client.containers.run(tag, name=made.container(), remove=True)
            return [ln for ln in lines if ln.strip()], image.attrs["RootFS"]["Layers"][:2], ran

    lines, layers, ran = assert_same(on_both(workload))
    assert b"Step 3/4 : RUN sha256sum /blob > /sum" in lines
    assert len(layers) == 2
    assert ran == f"{sha256(blob)}  /blob\n".encode()


def test_many_keep_alive_requests_on_one_client(engine: EngineHandle, sleeper: str) -> None:
    """200 requests on one client reuse its pooled connection: the proxy holds no more
    descriptors after them than after the first."""
    proxy_pid = pid_of(engine, "proxy")

    def workload(path: str) -> tuple[set[tuple[str, ...]], int]:
        with client_on(engine, path) as client:
            seen = set()
            listing = {"all": True, "filters": {"name": sleeper}}
            seen.add(tuple(c.name for c in client.containers.list(**listing)))
            after_first = fd_count(proxy_pid)
            for _ in range(199):
                seen.add(tuple(c.name for c in client.containers.list(**listing)))
            return seen, fd_count(proxy_pid) - after_first

    seen, growth = assert_same(on_both(workload))
    assert seen == {(sleeper,)}
    assert growth <= 0


_TIMING = {"Verifying Checksum", "Waiting", "Downloading", "Extracting"}


def test_pull_stream(engine: EngineHandle, pushed: Pushed) -> None:
    def workload(path: str) -> tuple[list[tuple[str, str]], str]:
        repo, tag = pushed.ref.rsplit(":", 1)
        with client_on(engine, path) as client:
            try:
                progress = client.api.pull(repo, tag, stream=True, decode=True)
                statuses = [(e.get("id", ""), e["status"]) for e in progress]
                image_id = client.images.get(pushed.ref).id
                return [s for s in statuses if s[1] not in _TIMING], image_id
            finally:
                client.images.remove(pushed.ref)

    statuses, image_id = assert_same(on_both(workload))
    assert ("", f"Status: Downloaded newer image for {pushed.ref}") in statuses
    assert any(status == "Pull complete" for _, status in statuses), statuses
    assert image_id == pushed.image_id


def test_events_window(engine: EngineHandle, made: Made) -> None:
    def workload(path: str) -> list[tuple[str, str]]:
        name = made.container()
        with client_on(engine, path) as client:
            since = time.time() - 0.5
            client.containers.run("busybox", "true", name=name, remove=True)
            events = client.events(
                since=since, until=time.time() + 0.5, filters={"container": name}, decode=True
            )
            return [(e["Type"], e["Action"]) for e in events]

    events = assert_same(on_both(workload))
    for action in ("create", "start", "die", "destroy"):
        assert ("container", action) in events, events
