"""The proxy under the memory attack of issue 15 (finding 4): its RSS, and how long a normal
client's ``GET /_ping`` takes meanwhile.

Starts a private eci engine (ECI on), then for each attack: the test user (a docker-group
user) opens N connections with ``tests/security/flood.py``, each sending a
`containers/create` body and never its end, and holds them; meanwhile root (another uid)
sends ``GET /_ping`` on a new connection per request, as the Docker CLI does. Attacks:

- ``chunked 16 MiB``: the issue's (~16 MiB bodies, chunked, refused at the route's limit);
- ``held 2 MiB``: bodies announced with a Content-Length just over what is sent, under the
  limit, so the proxy must hold or wait for each until its body timeout.

Printed per attack: the proxy's RSS before, its peak (VmRSS sampled every 50 ms), while the
connections are held, and once they closed (after a short settle); how the connections were
answered; the p50 and p99 of ``_ping`` during the attack (from its start until the
connections close) and the p50 added to the idle p50, measured once the attack settled (the
machine is shared: its load moves).

    .venv/bin/python bench/proxy_memory.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from proxy import RssSampler, _status_kib, engine, listener_pid  # bench/proxy.py

MiB = 1 << 20
TEST_USER = "eci-tester"
FLOOD = Path(__file__).resolve().parents[1] / "tests" / "security" / "flood.py"
#: (label, flood.py mode, body size)
ATTACKS = (
    ("chunked 16 MiB", "body", 16 * MiB - 64 * 1024),
    ("held 2 MiB", "held", 2 * MiB - 64 * 1024),
)
#: how long after the attack's connections closed its memory is read again
SETTLE = 3.0
IDLE_PINGS = 300
PING = b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"


def ping(path: Path) -> float:
    """One ``GET /_ping`` on a new connection, in seconds."""
    start = time.perf_counter()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        sock.sendall(PING)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    if not data.startswith(b"HTTP/1.1 200 "):
        raise SystemExit(f"_ping: {data[:200]!r}")
    return time.perf_counter() - start


class Pinger(threading.Thread):
    """Pings until stopped, one after the other."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.seconds: list[float] = []

    def run(self) -> None:
        while not self.stop.is_set():
            self.seconds.append(ping(self.path))


def _ms(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


@dataclass
class Attack:
    label: str
    connections: int
    before_mib: float
    peak_mib: float
    held_mib: float
    after_mib: float
    answers: dict[str, int]
    pings: int
    ping_p50_ms: float
    ping_p99_ms: float
    idle_p50_ms: float
    added_p50_ms: float


def attack(path: Path, pid: int, label: str, mode: str, size: int, count: int) -> Attack:
    before = _status_kib(pid)["VmRSS"]
    sampler, pinger = RssSampler(pid), Pinger(path)
    sampler.start()
    argv = ["runuser", "-u", TEST_USER, "--", "/usr/bin/python3", "-I", str(FLOOD)]
    proc = subprocess.Popen(
        [*argv, str(path), mode, str(count), str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    pinger.start()
    try:
        summary = json.loads(proc.stdout.readline() or "{}")
        held = _status_kib(pid)["VmRSS"]
    finally:
        pinger.stop.set()
        pinger.join()
        proc.stdin.close()
        proc.wait()
        proc.stdout.close()
        sampler.stop.set()
        sampler.join()
    time.sleep(SETTLE)
    after = _status_kib(pid)["VmRSS"]
    idle_p50 = _ms([ping(path) for _ in range(IDLE_PINGS)], 50)
    p50 = _ms(pinger.seconds, 50)
    return Attack(
        label,
        count,
        before / 1024,
        max(sampler.samples) / 1024,
        held / 1024,
        after / 1024,
        summary.get("answers", {}),
        len(pinger.seconds),
        p50,
        _ms(pinger.seconds, 99),
        idle_p50,
        p50 - idle_p50,
    )


def table(rows: list[Attack]) -> str:
    lines = [
        "| attack | connections | RSS before | peak | held | after | answers | `_ping` p50 "
        "(p99) during | idle p50 | added p50 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(r.answers.items()))
        lines.append(
            f"| {r.label} | {r.connections} | {r.before_mib:.0f} MiB | {r.peak_mib:.0f} MiB | "
            f"{r.held_mib:.0f} MiB | {r.after_mib:.0f} MiB | {answers} | "
            f"{r.ping_p50_ms:.2f} ms ({r.ping_p99_ms:.1f} ms, n={r.pings}) | "
            f"{r.idle_p50_ms:.2f} ms | {r.added_p50_ms:+.2f} ms |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="48 connections only")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    counts = (48,) if args.quick else (48, 480)
    with engine() as layout:
        path = layout.user_socket
        pid = listener_pid(path)
        rows = [
            attack(path, pid, label, mode, size, count)
            for label, mode, size in ATTACKS
            for count in counts
        ]
    print(table(rows))
    print(f"\n{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} after")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))


if __name__ == "__main__":
    main()
