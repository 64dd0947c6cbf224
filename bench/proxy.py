"""The policing proxy's cost: latency, throughput and memory, proxy vs dockerd's raw socket.

Starts a private eci engine (ECI on) on a temporary state dir, creates a few containers (three
idle ones, one holding a file of SIZE bytes, one that printed SIZE bytes of 4 KiB lines), then
measures, each time side by side with the same client on the user-facing socket (through the
proxy) and on dockerd's own socket (direct), the variants interleaved in one loop:

1. latency of ``GET /v1.41/containers/json``: a keep-alive client (one connection, many
   requests) and a new connection per request (as the Docker CLI does); p50 and p99;
2. throughput of ``docker cp`` out (``GET /containers/{id}/archive?path=/big``) and of
   ``GET /containers/{id}/logs?stdout=1``, bodies read and thrown away; median of the reps,
   the spread of the per-repetition ratios, and the CPU per GiB of the proxy and of dockerd
   (``/proc/PID/stat``: the machine's other load does not move it as it moves the rates);
3. the proxy's memory while two SIZE archives stream through it concurrently: VmRSS sampled
   every 50 ms (and VmHWM, reset just before).

The client is a raw unix socket with minimal HTTP/1.1, identical for both paths. Prints a
markdown table, writes JSON with ``--json``, and tears the engine down. ``--baseline SRC`` adds
a second proxy, run from another checkout's ``src/`` (e.g. ``main``'s) in front of the same
dockerd, to the throughput loop: before and after side by side in one run.

    .venv/bin/python bench/proxy.py [--quick] [--streams-only] [--baseline SRC] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from start import ECI, SETTINGS, _run  # bench/start.py

from eci.engine.layout import EngineLayout

GiB = 1 << 30
MiB = 1 << 20
LINE = 4096  # bytes per log line, newline included
IDLE_CONTAINERS = 3
TIMES, MINUS = "\u00d7", "\u2212"  # for the markdown table


# ---- engine and containers ------------------------------------------------------------------
@contextlib.contextmanager
def engine(admin_settings: object = SETTINGS) -> Iterator[EngineLayout]:
    """A private engine (ECI on) on a fresh state dir, images built; always torn down."""
    state = Path(tempfile.mkdtemp(prefix="eci-bench-", dir="/tmp"))
    state.chmod(0o711)
    settings = state.with_suffix(".json")
    settings.write_text(json.dumps(admin_settings))
    settings.chmod(0o644)
    try:
        _run(ECI, "up", "--registry", "--state-dir", str(state), "--admin-settings", str(settings))
        _run(ECI, "images", "--state-dir", str(state))
        yield EngineLayout.for_state_dir(state)
    finally:
        subprocess.run([ECI, "down", "--state-dir", str(state)], capture_output=True)
        settings.unlink(missing_ok=True)
        subprocess.run(["rm", "-rf", "--one-file-system", str(state)], check=False)


@dataclass
class Containers:
    big: str  # holds /big, SIZE bytes
    logs: str  # printed SIZE bytes of LINE-byte lines to stdout
    all: list[str]


def make_containers(layout: EngineLayout, size: int) -> Containers:
    """Set up through dockerd's own socket (not measured, not policed)."""
    docker = ["docker", "-H", f"unix://{layout.raw_socket}"]
    ids: list[str] = []

    def run_to_end(script: str) -> str:
        cid = _run(*docker, "run", "-d", "busybox", "sh", "-c", script).strip()
        ids.append(cid)
        if (code := _run(*docker, "wait", cid).strip()) != "0":
            raise SystemExit(f"setup container {script!r} exited {code}")
        return cid

    try:
        big = run_to_end(f"head -c {size} /dev/zero > /big")
        line = f"$(head -c {LINE - 1} /dev/zero | tr '\\0' x)"
        logs = run_to_end(f'yes "{line}" | head -c {size}')
        for _ in range(IDLE_CONTAINERS):
            ids.append(_run(*docker, "run", "-d", "busybox", "sleep", "86400").strip())
    except BaseException:
        remove_containers(layout, ids)
        raise
    return Containers(big, logs, ids)


def remove_containers(layout: EngineLayout, ids: list[str]) -> None:
    if ids:
        docker = ["docker", "-H", f"unix://{layout.raw_socket}"]
        subprocess.run([*docker, "rm", "-f", *ids], capture_output=True, check=False)


def listener_pid(path: Path) -> int:
    """The pid of the process serving a unix socket (SO_PEERCRED of a connection to it)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return int.from_bytes(raw[:4], sys.byteorder)


# ---- a minimal HTTP/1.1 client ------------------------------------------------------------
class Response:
    """Reads one response at a time off a socket (keep-alive: leftovers carry over)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed mid-response")
        self.buf += data

    def _until(self, sep: bytes) -> bytes:
        while (end := self.buf.find(sep)) < 0:
            self._fill()
        out = bytes(self.buf[:end])
        del self.buf[: end + len(sep)]
        return out

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read(self) -> tuple[int, bytes]:
        """(status, body) of the next response."""
        status_line, *lines = self._until(b"\r\n\r\n").split(b"\r\n")
        status = int(status_line.split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(b":", 1) for h in lines)}
        if headers.get(b"transfer-encoding") == b"chunked":
            body = bytearray()
            while size := int(self._until(b"\r\n").split(b";")[0], 16):
                body += self._exactly(size)
                self._exactly(2)
            self._until(b"\r\n")  # no trailers
            return status, bytes(body)
        return status, self._exactly(int(headers.get(b"content-length", b"0")))


def _request(target: str, close: bool = False) -> bytes:
    extra = "Connection: close\r\n" if close else ""
    return f"GET {target} HTTP/1.1\r\nHost: docker\r\n{extra}\r\n".encode()


def _connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    return sock


LIST = "/v1.41/containers/json"


class Client(Protocol):
    def __call__(self) -> int:
        """One ``GET LIST``: nanoseconds from sending to the end of the response."""

    def close(self) -> None: ...


class KeepAlive:
    """One connection, many requests."""

    def __init__(self, path: Path) -> None:
        self.sock = _connect(path)
        self.response = Response(self.sock)
        self.request = _request(LIST)

    def __call__(self) -> int:
        start = time.perf_counter_ns()
        self.sock.sendall(self.request)
        status, _ = self.response.read()
        elapsed = time.perf_counter_ns() - start
        if status != 200:
            raise SystemExit(f"GET {LIST}: {status}")
        return elapsed

    def close(self) -> None:
        self.sock.close()


class NewConnection:
    """A connection per request, closed after the response (the Docker CLI's pattern)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.request = _request(LIST)

    def __call__(self) -> int:
        start = time.perf_counter_ns()
        with _connect(self.path) as sock:
            sock.sendall(self.request)
            status, _ = Response(sock).read()
        elapsed = time.perf_counter_ns() - start
        if status != 200:
            raise SystemExit(f"GET {LIST}: {status}")
        return elapsed

    def close(self) -> None:
        pass


def stream(path: Path, target: str) -> tuple[int, float]:
    """GET ``target`` with ``Connection: close``, read to EOF as fast as possible and throw the
    body away: (body bytes, seconds). Checks the status and that the body ended properly."""
    buf = bytearray(MiB)
    head = bytearray()
    header_len = -1
    total = 0
    tail = b""
    start = time.perf_counter()
    with _connect(path) as sock:
        sock.sendall(_request(target, close=True))
        while n := sock.recv_into(buf):
            total += n
            if header_len < 0:
                head += buf[:n]
                if (end := head.find(b"\r\n\r\n")) >= 0:
                    header_len = end + 4
            tail = (tail + bytes(buf[max(0, n - 5) : n]))[-5:]
    seconds = time.perf_counter() - start
    status_line, *lines = bytes(head[:header_len]).split(b"\r\n")
    if b" 200 " not in status_line + b" ":
        raise SystemExit(f"GET {target}: {status_line!r}")
    chunked = any(h.lower() == b"transfer-encoding: chunked" for h in lines)
    if chunked and tail != b"0\r\n\r\n":
        raise SystemExit(f"GET {target}: response cut short (ends {tail!r})")
    return total - header_len, seconds


# ---- proxy process ------------------------------------------------------------------------
def _status_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class RssSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.stop = threading.Event()
        self.samples: list[int] = []  # KiB

    def run(self) -> None:
        while True:
            self.samples.append(_status_kib(self.pid)["VmRSS"])
            if self.stop.wait(self.interval):
                return


# ---- the measurements ---------------------------------------------------------------------
def _percentile(values: list[int], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] / 1e6  # ms


@dataclass
class Latency:
    client: str
    proxy_p50_ms: float
    proxy_p99_ms: float
    direct_p50_ms: float
    direct_p99_ms: float
    added_p50_ms: float = field(init=False)
    added_p99_ms: float = field(init=False)

    def __post_init__(self) -> None:
        self.added_p50_ms = self.proxy_p50_ms - self.direct_p50_ms
        self.added_p99_ms = self.proxy_p99_ms - self.direct_p99_ms


def measure_latency(layout: EngineLayout, requests: int) -> list[Latency]:
    paths = {"proxy": layout.user_socket, "direct": layout.raw_socket}
    clients: dict[tuple[str, str], Client] = {}
    for name, path in paths.items():
        clients["keep-alive", name] = KeepAlive(path)
        clients["new connection per request", name] = NewConnection(path)
    variants = list(clients)
    samples: dict[tuple[str, str], list[int]] = {v: [] for v in variants}
    try:
        for _ in range(max(20, requests // 20)):  # warm-up
            for v in variants:
                clients[v]()
        gc.collect()
        gc.disable()
        for i in range(requests):
            shift = i % len(variants)  # rotate who goes first
            for v in variants[shift:] + variants[:shift]:
                samples[v].append(clients[v]())
    finally:
        gc.enable()
        for c in clients.values():
            c.close()
    return [
        Latency(
            client,
            _percentile(samples[client, "proxy"], 50),
            _percentile(samples[client, "proxy"], 99),
            _percentile(samples[client, "direct"], 50),
            _percentile(samples[client, "direct"], 99),
        )
        for client in ("keep-alive", "new connection per request")
    ]


@dataclass
class Throughput:
    what: str
    body_bytes: int
    reps: int
    proxy_mib_s: float
    direct_mib_s: float
    ratio: float
    proxy_cpu_s_per_gib: float  # the proxy process's user+system CPU per GiB relayed
    #: proxy / direct of each repetition (the two run back to back): the spread
    ratios: list[float] = field(default_factory=list)
    #: dockerd's CPU per GiB (median) on each path: what the stream costs it
    dockerd_cpu_s_per_gib: dict[str, float] = field(default_factory=dict)
    #: with ``--baseline``: the other checkout's proxy, measured in the same loop
    baseline_mib_s: float | None = None
    baseline_ratio: float | None = None
    baseline_ratios: list[float] = field(default_factory=list)
    baseline_cpu_s_per_gib: float | None = None


STREAMS = {
    "docker cp out (archive)": "/v1.41/containers/{big}/archive?path=/big",
    "logs": "/v1.41/containers/{logs}/logs?stdout=1",
}


def measure_throughput(
    layout: EngineLayout, box: Containers, reps: int, baseline: Path | None = None
) -> list[Throughput]:
    """Each stream on each path in turn, the order of the paths rotated every repetition;
    the CPU of the proxy that relays it, and dockerd's, counted around each stream."""
    targets = {what: t.format(big=box.big, logs=box.logs) for what, t in STREAMS.items()}
    paths = {"proxy": layout.user_socket, "direct": layout.raw_socket}
    if baseline is not None:
        paths["baseline"] = baseline
    pids = {name: listener_pid(path) for name, path in paths.items()}  # (direct: dockerd)
    dockerd = pids["direct"]
    rates: dict[tuple[str, str], list[float]] = {(t, p): [] for t in targets for p in paths}
    cpu: dict[tuple[str, str], list[float]] = {(t, p): [] for t in targets for p in paths}
    dockerd_cpu: dict[tuple[str, str], list[float]] = {(t, p): [] for t in targets for p in paths}
    sizes: dict[str, int] = {}
    for target in targets.values():  # warm-up: page cache, dockerd
        for path in paths.values():
            stream(path, target)
    names = list(paths)
    for rep in range(reps):
        for what, target in targets.items():
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                cpu0, dockerd0 = cpu_seconds(pids[name]), cpu_seconds(dockerd)
                body, seconds = stream(paths[name], target)
                gib = body / GiB
                cpu[what, name].append((cpu_seconds(pids[name]) - cpu0) / gib)
                dockerd_cpu[what, name].append((cpu_seconds(dockerd) - dockerd0) / gib)
                if sizes.setdefault(what, body) != body:
                    raise SystemExit(f"{what}: {body} bytes, earlier {sizes[what]}")
                rates[what, name].append(body / seconds / MiB)
    results = []
    for what in targets:
        direct = rates[what, "direct"]

        def ratios(name: str, what: str = what, direct: list[float] = direct) -> list[float]:
            return [round(a / b, 3) for a, b in zip(rates[what, name], direct, strict=True)]

        t = Throughput(
            what,
            sizes[what],
            reps,
            statistics.median(rates[what, "proxy"]),
            statistics.median(direct),
            statistics.median(rates[what, "proxy"]) / statistics.median(direct),
            statistics.median(cpu[what, "proxy"]),
            ratios("proxy"),
            {name: statistics.median(dockerd_cpu[what, name]) for name in paths},
        )
        if baseline is not None:
            t.baseline_mib_s = statistics.median(rates[what, "baseline"])
            t.baseline_ratio = t.baseline_mib_s / t.direct_mib_s
            t.baseline_ratios = ratios("baseline")
            t.baseline_cpu_s_per_gib = statistics.median(cpu[what, "baseline"])
        results.append(t)
    return results


_BASELINE_PROXY = """
import asyncio, sys
from pathlib import Path
from eci.engine.layout import EngineLayout
from eci.proxy.limits import Limits
from eci.proxy.memory import keep_stream_buffers_on_the_heap
from eci.proxy.server import Proxy
proxy = Proxy(EngineLayout.for_state_dir(Path(sys.argv[1])), "docker", Limits())
proxy.config.grants = None  # the engine's own proxy serves the grants
keep_stream_buffers_on_the_heap()
asyncio.run(proxy.serve(Path(sys.argv[2])))
"""


@contextlib.contextmanager
def baseline_proxy(layout: EngineLayout, src: Path) -> Iterator[Path]:
    """A second proxy, the code of another checkout's ``src`` (e.g. ``main``), in front of the
    same dockerd on a socket of its own: before and after measured side by side, one run."""
    listen = layout.state_dir / "baseline.sock"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    args = [sys.executable, "-c", _BASELINE_PROXY, str(layout.state_dir), str(listen)]
    proc = subprocess.Popen(args, cwd=src, env=env)  # (cwd first on sys.path: src's eci)
    try:
        deadline = time.monotonic() + 30
        while not _answers(listen):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the baseline proxy from {src} did not start")
            time.sleep(0.1)
        yield listen
    finally:
        proc.terminate()
        proc.wait()


def _answers(path: Path) -> bool:
    try:
        with _connect(path) as sock:
            sock.sendall(_request("/_ping"))
            return Response(sock).read()[0] == 200
    except OSError:
        return False


@dataclass
class Memory:
    streams: int
    body_bytes_each: int
    seconds: float
    idle_rss_kib: int
    max_rss_kib: int
    hwm_kib: int  # VmHWM after the stream, reset just before it
    hwm_before_reset_kib: int  # VmHWM since the proxy started (includes the phases before)
    samples: int


def measure_memory(layout: EngineLayout, box: Containers, streams: int) -> Memory:
    pid = listener_pid(layout.user_socket)
    target = f"/v1.41/containers/{box.big}/archive?path=/big"
    before = _status_kib(pid)
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    sampler = RssSampler(pid)
    results: list[tuple[int, float]] = []
    threads = [
        threading.Thread(target=lambda: results.append(stream(layout.user_socket, target)))
        for _ in range(streams)
    ]
    sampler.start()
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    after = _status_kib(pid)
    if len(results) != streams:
        raise SystemExit("a concurrent stream failed")
    return Memory(
        streams,
        results[0][0],
        seconds,
        before["VmRSS"],
        max(sampler.samples),
        after["VmHWM"],
        before["VmHWM"],
        len(sampler.samples),
    )


# ---- report ---------------------------------------------------------------------------------
def _yes(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def _size(n: int) -> str:
    return f"{n / GiB:g} GiB" if n >= GiB else f"{n / MiB:g} MiB"


#: proxy / direct the relays should reach (issue 16)
STREAM_GOAL = 0.95


def table(lat: list[Latency], thr: list[Throughput], mem: Memory | None, size: int, n: int) -> str:
    rows = [
        f"| measurement | proxy | direct | proxy {MINUS} direct, proxy / direct | goal |",
        "|---|---|---|---|---|",
    ]
    for x in lat:
        what = f"`GET /containers/json`, {x.client} (n={n})"
        rows.append(
            f"| {what}, p50 | {x.proxy_p50_ms:.3f} ms | {x.direct_p50_ms:.3f} ms "
            f"| +{x.added_p50_ms:.3f} ms | ≤ +1 ms: {_yes(x.added_p50_ms <= 1.0)} |"
        )
        rows.append(
            f"| {what}, p99 | {x.proxy_p99_ms:.3f} ms | {x.direct_p99_ms:.3f} ms "
            f"| +{x.added_p99_ms:.3f} ms | — |"
        )
    for t in thr:
        rows.append(
            f"| {t.what}, {_size(size)} (median of {t.reps}) | {t.proxy_mib_s:.0f} MiB/s "
            f"| {t.direct_mib_s:.0f} MiB/s | {t.ratio:.2f}{TIMES} "
            f"| ≥ {STREAM_GOAL:.2f}{TIMES}: {_yes(t.ratio >= STREAM_GOAL)} |"
        )
    if mem is not None:
        rows.append(
            f"| proxy RSS, {mem.streams} {TIMES} {_size(size)} archives at once: max VmRSS "
            f"(VmHWM; idle) | {mem.max_rss_kib / 1024:.1f} MiB ({mem.hwm_kib / 1024:.1f}; "
            f"{mem.idle_rss_kib / 1024:.1f}) | — | — "
            f"| < 64 MiB: {_yes(max(mem.max_rss_kib, mem.hwm_kib) < 64 * 1024)} |"
        )
    return "\n".join(rows)


def _spread(ratios: list[float]) -> str:
    return f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"


def stream_costs(thr: list[Throughput]) -> str:
    """Per stream: the spread of the ratios and the CPU per GiB of each process on the way."""
    lines = []
    for t in thr:
        dockerd = ", ".join(f"{k} {v:.2f}" for k, v in t.dockerd_cpu_s_per_gib.items())
        lines.append(
            f"{t.what}: proxy / direct {t.ratio:.2f}{TIMES} (per repetition "
            f"{_spread(t.ratios)}); CPU s per GiB: proxy {t.proxy_cpu_s_per_gib:.2f}, "
            f"dockerd on each path {dockerd}"
        )
        if t.baseline_ratio is not None and t.baseline_cpu_s_per_gib is not None:
            lines.append(
                f"  baseline proxy: {t.baseline_mib_s:.0f} MiB/s, {t.baseline_ratio:.2f}{TIMES} "
                f"(per repetition {_spread(t.baseline_ratios)}); "
                f"CPU {t.baseline_cpu_s_per_gib:.2f} s per GiB"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="64 MiB streams, 200 requests")
    parser.add_argument("--requests", type=int, help="latency requests per variant")
    parser.add_argument("--size", type=int, help="bytes of the archive file and of the logs")
    parser.add_argument("--reps", type=int, default=5, help="throughput repetitions")
    parser.add_argument(
        "--streams-only", action="store_true", help="throughput only (no latency, no memory)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="SRC",
        help="also measure a proxy run from this checkout's src/ directory, side by side",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    size = args.size or (64 * MiB if args.quick else GiB)
    requests = args.requests or (200 if args.quick else 2000)
    reps = 3 if args.quick and args.reps == 5 else args.reps
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    lat: list[Latency] = []
    mem: Memory | None = None
    with engine() as layout, contextlib.ExitStack() as stack:
        baseline = None
        if args.baseline is not None:
            baseline = stack.enter_context(baseline_proxy(layout, args.baseline.resolve()))
        box = make_containers(layout, size)
        try:
            if not args.streams_only:
                lat = measure_latency(layout, requests)
            thr = measure_throughput(layout, box, reps, baseline)
            if not args.streams_only:
                mem = measure_memory(layout, box, 2)
        finally:
            remove_containers(layout, box.all)
    print(table(lat, thr, mem, size, requests))
    machine = (
        f"{os.cpu_count()} cores, kernel {platform.release()}, Python {sys.version.split()[0]}"
    )
    load = [round(x, 2) for x in (*load_before[:1], *os.getloadavg()[:1])]
    print(f"\n{machine}; load average {load[0]} before, {load[1]} after; ", end="")
    print(f"{time.perf_counter() - t0:.0f} s in all")
    print(stream_costs(thr))
    if args.json:
        result = {
            "machine": machine,
            "load_average_before_after": load,
            "size_bytes": size,
            "requests": requests,
            "baseline": str(args.baseline) if args.baseline else None,
            "latency": [asdict(x) for x in lat],
            "throughput": [asdict(t) for t in thr],
            "memory": asdict(mem) if mem is not None else None,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
