"""Parallel Docker CLI clients through the proxy: a bounded soak (issue 16's proxy bug).

Eight clients cycle run/exec/cp/logs/rm at once, as the unprivileged test user. The bug
this guards against (a pooled upstream connection whose write side the client-EOF watcher
had shut, written to by the next client) failed about 3 cycles in 1,000; the deterministic
reproductions are in tests/unit/proxy/test_connection.py and test_upstream_pool.py, the
1,000-cycle soak is bench/proxy_soak.py. Here every cycle must pass, no container may be left
behind (a failed start left a `run -d` in Created), and the proxy must log no traceback.
"""

from __future__ import annotations

import itertools
import threading

from tests.support import EngineHandle, unique

CLIENTS = 8
CYCLES = 96


def _cycle(engine: EngineHandle) -> str | None:
    """One cycle; the failing command and its error, if one fails."""
    name = unique("proxy-soak")
    steps = [
        ["run", "-d", "--name", name, "busybox", "sleep", "60"],
        ["exec", name, "true"],
        ["cp", f"{name}:/etc/hostname", "-"],
        ["logs", name],
        ["rm", "-f", name],
    ]
    for args in steps:
        result = engine.docker(*args, check=False)
        if result.returncode != 0:
            engine.docker("rm", "-f", name, direct=True, check=False)
            return f"docker {args[0]}: {result.stderr.strip()}"
    return None


def _proxy_errors(engine: EngineHandle) -> list[str]:
    """The last line of every traceback in the proxy's log: each is a request it answered
    with a 500 (the bug's `RuntimeError: Cannot call write() after write_eof()`)."""
    log = engine.layout.log_file("proxy")
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
    return [next((x for x in lines[i + 1 :] if not x.startswith(" ")), "?") for i in starts]


def test_parallel_clients_cycle_through_the_proxy_without_a_failure(engine: EngineHandle) -> None:
    known = len(_proxy_errors(engine))
    numbers = itertools.count()
    failures: list[str] = []

    def client() -> None:
        while next(numbers) < CYCLES:
            if (failure := _cycle(engine)) is not None:
                failures.append(failure)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    left = engine.docker("ps", "-aq", "--filter", "name=proxy-soak", direct=True).stdout.split()
    assert (failures, _proxy_errors(engine)[known:], left) == ([], [], [])
