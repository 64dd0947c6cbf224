"""Container start cost under eci vs plain runc, side by side in one run.

Starts a private eci engine (ECI on) on a temporary state dir, builds the test images and an
image of 100,000 files, then alternates, in one loop so all see the same machine state (the
order reversed every other round):

- start: `docker run --rm busybox true` through eci (the proxy's socket, the eci runtime), the
  eci runtime on dockerd's own socket (no proxy), and plain runc on dockerd's own socket
  (Docker without eci);
- exec: `docker exec CONTAINER true` into a running container, the same three ways;
- parallel: 16 such runs, 8 at a time, the same three ways;
- size: the 100k-file image and --privileged under eci;
- calls: calls the mount supervisor answers inside a container, against plain runc.

Prints medians with their quartiles, and the ratios (eci vs runc, as the median of the
per-round ratios with its quartiles; 100k-file image vs busybox, both under eci: start cost
must not grow with image size), then tears the engine down.

    .venv/bin/python bench/start.py [--runs 30] [--only start,exec,parallel,size,calls]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import docker

from eci.engine.layout import EngineLayout
from eci.images import rootfs
from eci.images.builder import ImageRecipe, build_from_rootfs
from eci.images.registry import Registry

ECI = str(Path(sys.executable).with_name("eci"))
SETTINGS = {
    "configurationFileVersion": 2,
    "enhancedContainerIsolation": {"value": True, "locked": True},
}


def _run(*argv: str) -> str:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True).stdout


def _checked(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    _checked(argv)
    return time.perf_counter() - start


MANY_FILES = ImageRecipe("eci-bench/manyfiles:latest")


def build_many_files_image(state: Path, count: int = 100_000) -> None:
    """busybox plus `count` small files in 100 directories."""
    with tempfile.TemporaryDirectory(prefix="eci-bench-rootfs-") as tmp:
        root = Path(tmp)
        rootfs.assemble(root, {})
        per_dir = count // 100
        for d in range(100):
            directory = root / "data" / f"d{d:03}"
            directory.mkdir(parents=True)
            for f in range(per_dir):
                (directory / f"f{f:04}").write_text(f"{d}/{f}\n")
        client = docker.DockerClient(base_url=f"unix://{state}/run/private/dockerd.sock")
        writer = Registry.unix(EngineLayout.for_state_dir(state).registry_writer_socket)
        try:
            build_from_rootfs(client, root, MANY_FILES, writer)
        finally:
            client.close()


GROUPS = ("start", "exec", "parallel", "size", "calls")
#: the parallel variant: this many runs, this many at a time
PARALLEL_RUNS, PARALLEL_AT_ONCE = 16, 8
#: the three ways of each of start, exec and parallel: eci is the user-facing path, "eci
#: runtime" the same runtime without the proxy, "plain runc" Docker without eci
WAYS = ("eci", "eci runtime, no proxy", "plain runc")


def _timed_parallel(argv: list[str]) -> float:
    """Seconds for PARALLEL_RUNS runs of argv, PARALLEL_AT_ONCE at a time."""
    start = time.perf_counter()
    with ThreadPoolExecutor(PARALLEL_AT_ONCE) as pool:
        for _ in pool.map(lambda _: _checked(argv), range(PARALLEL_RUNS)):
            pass
    return time.perf_counter() - start


def _variants(
    groups: set[str], docker: list[str], direct: list[str], containers: dict[str, str]
) -> dict[str, Callable[[], float]]:
    """name -> a callable timing one sample, for the groups asked for."""
    run = ["run", "--rm"]
    starts = {
        "eci": [*docker, *run, "busybox", "true"],
        "eci runtime, no proxy": [*direct, *run, "--runtime=sysbox-runc", "busybox", "true"],
        "plain runc": [*direct, *run, "--runtime=runc", "busybox", "true"],
    }
    execs = {
        "eci": [*docker, "exec", containers["eci"], "true"],
        "eci runtime, no proxy": [*direct, "exec", containers["eci"], "true"],
        "plain runc": [*direct, "exec", containers["plain runc"], "true"],
    }
    variants: dict[str, Callable[[], float]] = {}
    if "start" in groups:
        variants.update({f"start, {way}": partial(_timed, starts[way]) for way in WAYS})
    if "exec" in groups:
        variants.update({f"exec, {way}": partial(_timed, execs[way]) for way in WAYS})
    if "parallel" in groups:
        variants.update({f"parallel, {way}": partial(_timed_parallel, starts[way]) for way in WAYS})
    sized = {
        "eci, 100k-file image": [*docker, *run, MANY_FILES.name, "true"],
        "eci --privileged": [*docker, *run, "--privileged", "busybox", "true"],
    }
    # calls the supervisor answers, inside one container each: 50 tmpfs mount+umount
    # pairs (eci --privileged vs runc with CAP_SYS_ADMIN and no seccomp), 200 sysinfo(2)
    # (`free`; every eci container) against plain runc
    mounts = "for i in $(seq 50); do mount -t tmpfs t /tmp && umount /tmp; done"
    sysinfos = "for i in $(seq 200); do free >/dev/null; done"
    runc_admin = ["--runtime=runc", "--cap-add=SYS_ADMIN", "--security-opt=seccomp=unconfined"]
    calls = {
        "50 mount+umount, eci --privileged": [
            *docker, *run, "--privileged", "busybox", "sh", "-c", mounts,
        ],
        "50 mount+umount, plain runc": [*direct, *run, *runc_admin, "busybox", "sh", "-c", mounts],
        "200 x free, eci": [*docker, *run, "busybox", "sh", "-c", sysinfos],
        "200 x free, plain runc": [
            *direct, *run, "--runtime=runc", "busybox", "sh", "-c", sysinfos,
        ],
    }  # fmt: skip
    for group, argvs in (("size", sized), ("calls", calls)):
        if group in groups:
            variants.update({name: partial(_timed, argv) for name, argv in argvs.items()})
    return variants


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def _report(samples: dict[str, list[float]], runs: int) -> None:
    for name, values in samples.items():
        q1, median, q3 = _quartiles(values)
        print(
            f"{name}: median {median * 1000:.0f} ms "
            f"(quartiles {q1 * 1000:.0f}-{q3 * 1000:.0f}, n={runs})"
        )
    for group in ("start", "exec", "parallel"):
        runc = samples.get(f"{group}, plain runc")
        for way in WAYS[:2]:
            eci = samples.get(f"{group}, {way}")
            if eci is None or runc is None:
                continue
            q1, median, q3 = _quartiles([e / r for e, r in zip(eci, runc, strict=True)])
            of_medians = statistics.median(eci) / statistics.median(runc)
            print(
                f"ratio {group}, {way} / plain runc: {of_medians:.2f}x of medians; per round "
                f"median {median:.2f}x (quartiles {q1:.2f}-{q3:.2f}) (goal <= 1.05x)"
            )
    if "eci --privileged" in samples and "start, plain runc" in samples:
        privileged = statistics.median(samples["eci --privileged"]) / statistics.median(
            samples["start, plain runc"]
        )
        print(f"ratio eci --privileged / runc: {privileged:.2f}x")
    for what in ("50 mount+umount", "200 x free"):
        eci_run = next(
            (statistics.median(s) for n, s in samples.items() if n.startswith(what + ", eci")), None
        )
        if eci_run is None:
            continue
        runc_run = statistics.median(samples[f"{what}, plain runc"])
        per_call = (eci_run - runc_run) / (100 if what.startswith("50") else 200) * 1000
        print(f"{what}: eci / runc {eci_run / runc_run:.2f}x, +{per_call:.2f} ms per call")
    if "eci, 100k-file image" in samples and "start, eci" in samples:
        size_ratio = statistics.median(samples["eci, 100k-file image"]) / statistics.median(
            samples["start, eci"]
        )
        print(f"ratio 100k-file image / busybox, both eci: {size_ratio:.2f}x (goal <= 1.10x)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups")
    args = parser.parse_args()
    groups = set(args.only.split(","))
    if not groups <= set(GROUPS):
        parser.error(f"--only: unknown groups {sorted(groups - set(GROUPS))}; known: {GROUPS}")
    state = Path(tempfile.mkdtemp(prefix="eci-bench-", dir="/tmp"))
    settings = state.with_suffix(".json")
    settings.write_text(json.dumps(SETTINGS))
    settings.chmod(0o644)
    try:
        t0 = time.perf_counter()
        _run(ECI, "up", "--registry", "--state-dir", str(state), "--admin-settings", str(settings))
        up_seconds = time.perf_counter() - t0
        _run(ECI, "images", "--state-dir", str(state))
        if "size" in groups:
            build_many_files_image(state)
        docker = ["docker", "-H", f"unix://{state}/run/docker.sock"]
        # plain runc is Docker without eci: dockerd's own socket (the proxy would force the
        # eci runtime whatever --runtime says)
        direct = ["docker", "-H", f"unix://{state}/run/private/dockerd.sock"]
        sleeper = ["run", "-d", "busybox", "sleep", "3600"]
        containers = {
            "eci": _run(*docker, *sleeper).strip(),
            "plain runc": _run(*direct, *sleeper[:2], "--runtime=runc", *sleeper[2:]).strip(),
        }
        variants = _variants(groups, docker, direct, containers)
        for sample in variants.values():  # warm-up
            sample()
        samples: dict[str, list[float]] = {name: [] for name in variants}
        order = list(variants)
        for _ in range(args.runs):
            for name in order:
                samples[name].append(variants[name]())
            order.reverse()
        print(f"eci up (cold engine start): {up_seconds:.2f} s")
        _report(samples, args.runs)
    finally:
        subprocess.run([ECI, "down", "--state-dir", str(state)], capture_output=True)
        settings.unlink(missing_ok=True)
        subprocess.run(["rm", "-rf", "--one-file-system", str(state)], check=False)


if __name__ == "__main__":
    main()
