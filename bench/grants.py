"""The Docker socket grant's cost (issue 6): creates that bind the Docker socket, an allowed
image (direct match) and an image built ``FROM`` it (the ``allowDerivedImages`` check), against
a create without the socket, and the same as whole runs.

Starts a private eci engine (ECI on, locked; ``imageList: ["docker:cli"]``,
``allowDerivedImages: true``) on a temporary state dir, builds the test images and a derived
image (``FROM docker:cli`` + ``RUN echo x > /x``, classic builder, through the user socket),
then measures through the user-facing socket, the variants interleaved in one loop (the order
shuffled each repetition), median and p90:

1. ``POST /containers/create`` (then ``DELETE``, timed apart) of busybox without the socket
   (the baseline), of docker:cli without the socket (the same image, no grant), of docker:cli
   with ``/var/run/docker.sock`` bound (direct match; the tag's registry digest is cached by the
   proxy for 5 minutes) and of the derived image with the socket bound (derived check);
2. the same four as whole runs of ``true``: create, start, wait, delete (``docker run --rm``
   without the attach);
3. what the lookups cost by themselves, on dockerd's own socket: ``eci.proxy.identity``'s
   ``image_identity`` for docker:cli and for the derived image (the proxy's code, its digest
   cache warm), ``GET /images/json?digests=1`` (the derived check's listing), inspecting each
   base one after another on one connection (dockerd's own share of the check), the labelled
   container listing the grant's settle asks for, and ``GET /distribution/docker:cli/json``
   (what a digest cache miss asks; here it reaches the engine's loopback registry mirror).

Then, to see how the derived check scales, the creates and lookups again after adding images:
unrelated ones (``docker commit`` of busybox containers: no registry digest, only a longer
image list) and images that carry a registry digest of ``docker.io/library/docker`` (one small
layer each, written into the engine's registry as ``library/docker:baseN`` and pulled back
through its mirror): the proxy inspects every one of those for each derived create.

The client is a raw unix socket with minimal HTTP/1.1 and one keep-alive connection. Prints
markdown tables, writes JSON with ``--json``, and tears the engine down.

    .venv/bin/python bench/grants.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import docker
from proxy import Response, _connect, engine  # bench/proxy.py
from start import SETTINGS  # bench/start.py

from eci.contract.labels import GRANT_LABEL
from eci.engine.layout import EngineLayout
from eci.images.builder import ImageRecipe, build_from_rootfs
from eci.images.registry import Registry
from eci.policy.imagelist import ImageIdentity, ImageList
from eci.proxy.identity import DigestCache, image_identity

ALLOWED = "docker:cli"
DERIVED = "eci-bench/derived:latest"
SOCKET = "/var/run/docker.sock"
ADMIN_SETTINGS = {
    **SETTINGS,
    "enhancedContainerIsolation": {
        **SETTINGS["enhancedContainerIsolation"],
        "dockerSocketMount": {"imageList": {"images": [ALLOWED], "allowDerivedImages": True}},
    },
}
TIMES, MINUS = "\u00d7", "\u2212"  # for the markdown tables

Sample = dict[str, float]  # phase -> milliseconds; "total" always


# ---- engine and images ----------------------------------------------------------------------
def build_derived(layout: EngineLayout) -> None:
    """``FROM docker:cli`` + one layer, classic builder, through the user socket."""
    with tempfile.TemporaryDirectory(prefix="eci-bench-ctx-") as ctx:
        (Path(ctx) / "Dockerfile").write_text(f"FROM {ALLOWED}\nRUN echo x > /x\n")
        subprocess.run(
            ["docker", "-H", f"unix://{layout.user_socket}", "build", "-q", "-t", DERIVED, ctx],
            check=True,
            capture_output=True,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )


def _stream(events: Iterator[dict[str, Any]], what: str) -> None:
    for event in events:
        if "error" in event:
            raise SystemExit(f"{what}: {event['error']}")


def _commit_busybox(client: docker.DockerClient, repository: str, tag: str) -> None:
    """A new image id (its own config) on busybox's layer."""
    container = client.api.create_container("busybox", "true")["Id"]
    try:
        client.api.commit(container, repository=repository, tag=tag)
    finally:
        client.api.remove_container(container)


def add_unrelated(client: docker.DockerClient, first: int, count: int) -> None:
    """Local images without a registry digest: listed, never inspected."""
    for i in range(first, first + count):
        _commit_busybox(client, "eci-bench/unrelated", f"u{i}")


def add_bases(client: docker.DockerClient, writer: Registry, first: int, count: int) -> None:
    """Local images carrying a registry digest of docker.io/library/docker, as a pulled
    ``docker:<tag>`` does: each is inspected for every derived create. Written into the
    engine's registry through its writer socket (the mirror is read-only), pulled back."""
    for i in range(first, first + count):
        with tempfile.TemporaryDirectory(prefix="eci-bench-base-") as root:
            (Path(root) / "base").write_text(f"{i}\n")
            recipe = ImageRecipe(f"docker:base{i}", with_busybox=False)
            build_from_rootfs(client, Path(root), recipe, writer)


def census(client: docker.DockerClient) -> tuple[int, list[str]]:
    """(how many local images, the ids of those carrying a registry digest of
    docker.io/library/docker)."""
    listing = client.api.images(all=False)
    wanted = ImageList.from_settings([ALLOWED], True).repositories
    bases = [
        str(i["Id"])
        for i in listing
        if ImageIdentity.from_inspect({"RepoDigests": i.get("RepoDigests")}).repositories & wanted
    ]
    return len(listing), bases


# ---- a keep-alive JSON client ----------------------------------------------------------------
class Api:
    """One keep-alive connection to a Docker API socket."""

    def __init__(self, path: Path) -> None:
        self.sock = _connect(path)
        self.response = Response(self.sock)

    def __call__(self, method: str, target: str, body: object = None) -> tuple[int, Any]:
        data = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} /v1.41{target} HTTP/1.1\r\nHost: docker\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + data)
        status, raw = self.response.read()
        return status, json.loads(raw) if raw.strip() else None

    def expect(self, status: int, method: str, target: str, body: object = None) -> Any:
        got, answer = self(method, target, body)
        if got != status:
            raise SystemExit(f"{method} {target}: {got} {answer}")
        return answer

    def close(self) -> None:
        self.sock.close()


def _ms(start: int) -> float:
    return (time.perf_counter_ns() - start) / 1e6


def create_spec(image: str, socket_bound: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"Image": image, "Cmd": ["true"]}
    if socket_bound:
        spec["HostConfig"] = {"Binds": [f"{SOCKET}:{SOCKET}"]}
    return spec


def create_remove(api: Api, spec: dict[str, Any]) -> Sample:
    t = time.perf_counter_ns()
    cid = api.expect(201, "POST", "/containers/create", spec)["Id"]
    create = _ms(t)
    t = time.perf_counter_ns()
    api.expect(204, "DELETE", f"/containers/{cid}")
    return {"total": create, "delete": _ms(t)}


def run_remove(api: Api, spec: dict[str, Any]) -> Sample:
    """Create, start, wait, delete: ``docker run --rm IMAGE true`` without the attach."""
    phases: Sample = {}
    t0 = t = time.perf_counter_ns()
    cid = api.expect(201, "POST", "/containers/create", spec)["Id"]
    phases["create"] = _ms(t)
    t = time.perf_counter_ns()
    api.expect(204, "POST", f"/containers/{cid}/start")
    phases["start"] = _ms(t)
    t = time.perf_counter_ns()
    code = api.expect(200, "POST", f"/containers/{cid}/wait")["StatusCode"]
    phases["wait"] = _ms(t)
    t = time.perf_counter_ns()
    api.expect(204, "DELETE", f"/containers/{cid}")
    phases["delete"] = _ms(t)
    phases["total"] = _ms(t0)
    if code != 0:
        raise SystemExit(f"{spec['Image']}: true exited {code}")
    return phases


def check_grants(user: Api, raw: Api) -> None:
    """Each variant does what it is meant to (not timed): the socket variants are granted a
    socket of their own, busybox with the socket is refused."""
    status, answer = user("POST", "/containers/create", create_spec("busybox", True))
    if status != 403:
        raise SystemExit(f"busybox with the socket: expected 403, got {status} {answer}")
    for image in (ALLOWED, DERIVED):
        cid = user.expect(201, "POST", "/containers/create", create_spec(image, True))["Id"]
        info = raw.expect(200, "GET", f"/containers/{cid}/json")
        user.expect(204, "DELETE", f"/containers/{cid}")
        if GRANT_LABEL not in (info["Config"].get("Labels") or {}):
            raise SystemExit(f"{image} with the socket: created without a grant")
        if any(b.startswith(f"{SOCKET}:") for b in info["HostConfig"].get("Binds") or []):
            raise SystemExit(f"{image} with the socket: bind not redirected")
    derived = raw.expect(200, "GET", f"/images/{DERIVED}/json")
    base = raw.expect(200, "GET", f"/images/{ALLOWED}/json")
    chain = base["RootFS"]["Layers"]
    if derived.get("RepoDigests") or derived["RootFS"]["Layers"][: len(chain)] != chain:
        raise SystemExit(f"{DERIVED} is not a digest-less image built FROM {ALLOWED}")


class Identity:
    """The proxy's image lookup (``eci.proxy.identity``) run by itself on dockerd's socket."""

    def __init__(self, raw: Path) -> None:
        self.raw = raw
        self.images = ImageList.from_settings([ALLOWED], True)
        self.cache = DigestCache()
        self.loop = asyncio.new_event_loop()

    def __call__(self, name: str, expect_bases: int | None) -> Sample:
        t = time.perf_counter_ns()
        image, resolved, bases = self.loop.run_until_complete(
            image_identity(self.raw, name, self.images, self.cache)
        )
        elapsed = _ms(t)
        if image is None or not self.images.match(image, resolved, bases):
            raise SystemExit(f"identity of {name}: not allowed ({resolved})")
        if expect_bases is not None and len(bases) != expect_bases:
            raise SystemExit(f"identity of {name}: {len(bases)} bases, expected {expect_bases}")
        return {"total": elapsed}

    def close(self) -> None:
        self.loop.close()


def timed_get(api: Api, *targets: str) -> Sample:
    """The ``GET``s one after another on the keep-alive connection."""
    t = time.perf_counter_ns()
    for target in targets:
        api.expect(200, "GET", target)
    return {"total": _ms(t)}


# ---- the measurements -----------------------------------------------------------------------
def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@dataclass
class Stat:
    n: int
    median_ms: float
    p90_ms: float
    max_ms: float
    phases_median_ms: dict[str, float]


def measure(variants: dict[str, Callable[[], Sample]], reps: int) -> dict[str, Stat]:
    names = list(variants)
    for name in names:  # warm-up
        variants[name]()
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for i in range(reps):
        # A new order each repetition: a variant that always came right after a run would
        # meet the runtime's clean-up of that run every time (a rotation keeps neighbours).
        order = random.Random(i).sample(names, len(names))
        for name in order:
            samples[name].append(variants[name]())
    out = {}
    for name, rows in samples.items():
        totals = [r["total"] for r in rows]
        phases = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "total"}
        out[name] = Stat(
            len(rows), statistics.median(totals), _percentile(totals, 90), max(totals), phases
        )
    return out


CREATE_BASE = "create: busybox, no socket (baseline)"
CREATE_CLI = "create: docker:cli, no socket"
CREATE_DIRECT = "create: docker:cli + socket (direct match)"
CREATE_DERIVED = "create: derived + socket (derived check)"
RUN_BASE = "run: busybox, no socket (baseline)"
RUN_CLI = "run: docker:cli, no socket"
RUN_DIRECT = "run: docker:cli + socket (direct match)"
RUN_DERIVED = "run: derived + socket (derived check)"
ID_DIRECT = "lookup: image_identity(docker:cli)"
ID_DERIVED = "lookup: image_identity(derived)"
LISTING = "lookup: GET /images/json?digests=1"
DISTRIBUTION = "lookup: GET /distribution/docker:cli/json (digest cache miss)"
INSPECT = "lookup: GET /images/{id}/json of every base, one after another"
GRANTED = "lookup: GET /containers/json?all=1, grant label filter (settle)"
GRANTED_TARGET = "/containers/json?all=1&filters=" + quote(json.dumps({"label": [GRANT_LABEL]}))


@dataclass
class State:
    label: str
    images: int  # local images listed
    bases: int  # of which carry a docker.io/library/docker registry digest
    results: dict[str, Stat]


def measure_state(
    label: str,
    client: docker.DockerClient,
    user: Api,
    raw: Api,
    identity: Identity,
    reps: int,
    full: bool,
) -> State:
    images, base_ids = census(client)
    bases = len(base_ids)
    inspect_bases = [f"/images/{i}/json" for i in base_ids]
    variants: dict[str, Callable[[], Sample]] = {
        CREATE_BASE: lambda: create_remove(user, create_spec("busybox", False)),
        CREATE_DIRECT: lambda: create_remove(user, create_spec(ALLOWED, True)),
        CREATE_DERIVED: lambda: create_remove(user, create_spec(DERIVED, True)),
        ID_DIRECT: lambda: identity(ALLOWED, 0),
        ID_DERIVED: lambda: identity(DERIVED, bases),
        LISTING: lambda: timed_get(raw, "/images/json?digests=1"),
        GRANTED: lambda: timed_get(raw, GRANTED_TARGET),
        INSPECT: lambda: timed_get(raw, *inspect_bases),
    }
    if full:
        variants |= {
            CREATE_CLI: lambda: create_remove(user, create_spec(ALLOWED, False)),
            RUN_BASE: lambda: run_remove(user, create_spec("busybox", False)),
            RUN_CLI: lambda: run_remove(user, create_spec(ALLOWED, False)),
            RUN_DIRECT: lambda: run_remove(user, create_spec(ALLOWED, True)),
            RUN_DERIVED: lambda: run_remove(user, create_spec(DERIVED, True)),
            DISTRIBUTION: lambda: timed_get(raw, f"/distribution/{ALLOWED}/json"),
        }
    print(f"measuring: {label} ({images} images, {bases} bases)", file=sys.stderr)
    return State(label, images, bases, measure(variants, reps))


# ---- report ---------------------------------------------------------------------------------
def main_table(state: State) -> str:
    r = state.results
    rows = [
        f"| variant (n={r[CREATE_BASE].n}) | median | p90 | vs baseline | added (median) "
        "| parts (medians, ms) |",
        "|---|---|---|---|---|---|",
    ]
    groups = (
        (CREATE_BASE, CREATE_CLI, CREATE_DIRECT, CREATE_DERIVED),
        (RUN_BASE, RUN_CLI, RUN_DIRECT, RUN_DERIVED),
    )
    for group in groups:
        for name in group:
            s, b = r[name], r[group[0]]
            parts = ", ".join(f"{k} {v:.1f}" for k, v in s.phases_median_ms.items())
            if name.startswith("create"):
                parts = f"(then {parts}: not in the total)"
            added = s.median_ms - b.median_ms
            sign = "+" if added >= 0 else MINUS
            rows.append(
                f"| {name} | {s.median_ms:.1f} ms | {s.p90_ms:.1f} ms "
                f"| {s.median_ms / b.median_ms:.2f}{TIMES} | {sign}{abs(added):.1f} ms "
                f"| {parts} |"
            )
    for name in (ID_DIRECT, ID_DERIVED, LISTING, INSPECT, GRANTED, DISTRIBUTION):
        s = r[name]
        rows.append(f"| {name} | {s.median_ms:.1f} ms | {s.p90_ms:.1f} ms | — | — | — |")
    return "\n".join(rows)


def scaling_table(states: list[State]) -> str:
    rows = [
        "| local images (with a docker.io/library/docker digest) | create, baseline "
        f"| create, direct | create, derived | derived {MINUS} baseline "
        "| `image_identity(derived)` | `GET /images/json` | inspect the bases, one by one |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for st in states:
        r = st.results
        added = r[CREATE_DERIVED].median_ms - r[CREATE_BASE].median_ms
        rows.append(
            f"| {st.images} ({st.bases}): {st.label} | {r[CREATE_BASE].median_ms:.1f} ms "
            f"| {r[CREATE_DIRECT].median_ms:.1f} ms | {r[CREATE_DERIVED].median_ms:.1f} ms "
            f"| +{added:.1f} ms | {r[ID_DERIVED].median_ms:.1f} ms "
            f"| {r[LISTING].median_ms:.1f} ms | {r[INSPECT].median_ms:.1f} ms |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="5 reps, fewer added images")
    parser.add_argument("--reps", type=int, help="repetitions per variant (default 30)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    reps = args.reps or (5 if args.quick else 30)
    unrelated = 10 if args.quick else 50
    steps = (5,) if args.quick else (10, 40)  # bases added at each step
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    states: list[State] = []
    with engine(ADMIN_SETTINGS) as layout:
        build_derived(layout)
        writer = Registry.unix(layout.registry_writer_socket)
        client = docker.DockerClient(base_url=f"unix://{layout.raw_socket}")
        user, raw = Api(layout.user_socket), Api(layout.raw_socket)
        identity = Identity(layout.raw_socket)
        try:
            check_grants(user, raw)
            states.append(measure_state("as built", client, user, raw, identity, reps, True))
            add_unrelated(client, 0, unrelated)
            label = f"+{unrelated} unrelated"
            states.append(measure_state(label, client, user, raw, identity, reps, False))
            added = 0
            for count in steps:
                add_bases(client, writer, added, count)
                added += count
                label = f"+{unrelated} unrelated, +{added} bases"
                states.append(measure_state(label, client, user, raw, identity, reps, False))
        finally:
            identity.close()
            user.close()
            raw.close()
            client.close()
    print(main_table(states[0]))
    print()
    print(scaling_table(states))
    machine = (
        f"{os.cpu_count()} cores, kernel {platform.release()}, Python {sys.version.split()[0]}"
    )
    load = [round(x, 2) for x in (*load_before[:1], *os.getloadavg()[:1])]
    print(f"\n{machine}; load average {load[0]} before, {load[1]} after; ", end="")
    print(f"{time.perf_counter() - t0:.0f} s in all")
    if args.json:
        result = {
            "machine": machine,
            "load_average_before_after": load,
            "reps": reps,
            "admin_settings": ADMIN_SETTINGS,
            "states": [asdict(s) for s in states],
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
