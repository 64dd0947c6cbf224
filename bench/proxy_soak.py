"""A soak of the proxy: parallel Docker CLI clients cycling run/exec/cp/logs/rm through it.

Starts a private eci engine (ECI on) on a temporary state dir, then CLIENTS threads each run
cycles until CYCLES are done, every command through the user-facing socket (the proxy):

    docker run -d --name <n> busybox sleep 60; docker exec <n> true;
    docker cp <n>:/etc/hostname -; docker logs <n>; docker rm -f <n>

A cycle fails when a command exits non-zero; the container's state is then noted (a `run -d`
whose start failed leaves it in Created) and it is removed through dockerd's own socket. Prints
the failed cycles and every internal error (500) the proxy logged; tears the engine down.
This is the reproduction of issue 16's proxy bug (a pooled upstream connection that the
client-EOF watcher had half-closed: `Cannot call write() after write_eof()`).

    .venv/bin/python bench/proxy_soak.py [--cycles 1000] [--clients 8] [--keep-logs DIR]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from proxy import engine  # bench/proxy.py

from eci.engine.layout import EngineLayout


@dataclass(frozen=True)
class Failure:
    cycle: int
    command: str
    error: str
    state: str  # the container's state after the failure ("" when it is gone)


def _docker(host: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "-H", host, *args], capture_output=True, text=True, timeout=120, check=False
    )


def cycle(layout: EngineLayout, number: int) -> Failure | None:
    """One run/exec/cp/logs/rm cycle through the proxy; the first failure, if any."""
    host, name = f"unix://{layout.user_socket}", f"soak-{uuid.uuid4().hex[:12]}"
    steps = [
        ("run", ["run", "-d", "--name", name, "busybox", "sleep", "60"]),
        ("exec", ["exec", name, "true"]),
        ("cp", ["cp", f"{name}:/etc/hostname", "-"]),
        ("logs", ["logs", name]),
        ("rm", ["rm", "-f", name]),
    ]
    for command, args in steps:
        result = _docker(host, *args)
        if result.returncode != 0:
            raw = f"unix://{layout.raw_socket}"
            state = _docker(raw, "inspect", "-f", "{{.State.Status}}", name).stdout.strip()
            _docker(raw, "rm", "-f", name)
            return Failure(number, command, result.stderr.strip(), state)
    return None


def soak(layout: EngineLayout, cycles: int, clients: int) -> list[Failure]:
    numbers = itertools.count()
    lock = threading.Lock()
    failures: list[Failure] = []

    def client() -> None:
        while (number := next(numbers)) < cycles:
            failure = cycle(layout, number)
            if failure is not None:
                with lock:
                    failures.append(failure)
                    print(f"cycle {number}: {failure}", flush=True)
            if number % 100 == 0:
                print(f"{number} cycles started", flush=True)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def proxy_errors(layout: EngineLayout) -> list[str]:
    """The last line of every traceback in the proxy's log: each is a request it answered
    with a 500. The Docker CLI hides most: they hit its first request, a `_ping`, whose
    failure it tolerates."""
    log = layout.log_file("proxy")
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
    return [next((x for x in lines[i + 1 :] if not x.startswith(" ")), "?") for i in starts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--keep-logs", type=Path, help="copy the engine's logs here when a cycle failed"
    )
    args = parser.parse_args()
    with engine() as layout:
        started = time.monotonic()
        failures = soak(layout, args.cycles, args.clients)
        elapsed = time.monotonic() - started
        errors = proxy_errors(layout)
        if (failures or errors) and args.keep_logs:
            shutil.copytree(layout.log_dir, args.keep_logs, dirs_exist_ok=True)
            print(f"engine logs kept in {args.keep_logs}")
    print(f"\n{args.cycles} cycles, {args.clients} clients, {elapsed:.0f} s (wall clock)")
    print(f"failed cycles: {len(failures)}")
    for failure in failures:
        print(f"  {failure}")
    print(f"requests the proxy answered with an internal error (500): {len(errors)}")
    for line in errors:
        print(f"  {line}")


if __name__ == "__main__":
    main()
