"""Bypass attempts, section 11 — the raw socket, and the audit log.

How a case works: see conftest.py."""

from __future__ import annotations

import errno
import json
import subprocess
import uuid
from pathlib import Path

import pytest
from tests.security.api_bypass.common import (
    CREATE,
    IMAGE,
    MARKER,
    PID_HOST,
    Env,
    inspect,
    unique,
)
from tests.security.rawhttp import exchange, request
from tests.support import TEST_USER, run

pytestmark = pytest.mark.engine


CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print("errno", exc.errno)
    raise SystemExit(0)
s.sendall(sys.stdin.buffer.read())
data = b""
while b"\\r\\n\\r\\n" not in data and (chunk := s.recv(65536)):
    data += chunk
print("status", data.split(b" ")[1].decode())
"""


def as_test_user(socket_path: Path, data: bytes = b"") -> str:
    """Connect to ``socket_path`` as the unprivileged test user and send ``data``: prints
    ``errno N`` or ``status N``."""
    done = subprocess.run(
        ["runuser", "-u", TEST_USER, "--", "python3", "-I", "-c", CLIENT, str(socket_path)],
        input=data,
        capture_output=True,
        timeout=60,
        check=True,
    )
    return done.stdout.decode().strip()


def test_raw_socket_unreachable_for_unprivileged_user(env: Env) -> None:
    """CVE-2023-0629 class: the daemon's own socket must not be reachable past the proxy."""
    assert as_test_user(env.raw) == f"errno {errno.EACCES}"
    # the same user does reach the proxy (positive control)
    assert as_test_user(env.user, request("GET", "/_ping")) == "status 200"
    private = env.engine.layout.private_dir.stat()
    assert private.st_uid == 0
    assert private.st_mode & 0o077 == 0


def test_audit_log_records_refusals_without_bodies(env: Env) -> None:
    marker = f"SECRET-MARKER-{uuid.uuid4().hex}"
    name = unique()
    body = {"Image": IMAGE, "Env": [f"TOKEN={marker}"], "HostConfig": {"PidMode": "host"}}
    status = as_test_user(env.user, request("POST", CREATE.format(name=name), body))
    assert status == "status 403"
    bind = {"Image": IMAGE, "Env": [f"TOKEN={marker}"], "HostConfig": {"Binds": ["/etc/docker:/x"]}}
    responses = exchange(env.user, request("POST", CREATE.format(name=name), bind))
    assert [r.status for r in responses] == [403], responses
    assert inspect(env, "containers", name) is None
    log = env.engine.layout.audit_log
    text = log.read_text()
    records = [json.loads(line) for line in text.splitlines()]
    uid = int(run(["id", "-u", TEST_USER]).stdout)
    mine = [r for r in records if r["uid"] == uid and r["rule"] == "host-namespace"]
    assert mine, records[-5:]
    record = mine[-1]
    assert record["route"] == "/containers/create"
    assert record["method"] == "POST"
    assert record["status"] == 403
    assert isinstance(record["pid"], int)
    assert record["pid"] > 0
    assert record["reason"] == PID_HOST
    assert any(r["uid"] == 0 and r["rule"] == "restricted-mount" for r in records)
    # never a request body: neither this test's marker nor any other case's
    assert marker not in text
    assert MARKER not in text
    assert "SECRET-MARKER" not in text
    assert log.stat().st_mode & 0o077 == 0
