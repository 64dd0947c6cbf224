"""Container start cost under eci vs plain runc, side by side in one run.

Starts a private eci engine (ECI on) on a temporary state dir, builds the test images and an
image of 100,000 files, then alternates, in one loop so all see the same machine state:
`docker run --rm busybox true` through eci (the proxy's socket, the eci runtime), the same with
plain runc on dockerd's own socket (Docker without eci), the 100k-file image and --privileged
under eci, and calls the mount supervisor answers inside a container, against plain runc.
Prints medians and the ratios (eci vs runc; 100k-file image vs busybox, both under eci: start
cost must not grow with image size), then tears the engine down.

    .venv/bin/python bench/start.py [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
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


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="eci-bench-", dir="/tmp"))
    settings = state.with_suffix(".json")
    settings.write_text(json.dumps(SETTINGS))
    settings.chmod(0o644)
    try:
        t0 = time.perf_counter()
        _run(ECI, "up", "--registry", "--state-dir", str(state), "--admin-settings", str(settings))
        up_seconds = time.perf_counter() - t0
        _run(ECI, "images", "--state-dir", str(state))
        build_many_files_image(state)
        docker = ["docker", "-H", f"unix://{state}/run/docker.sock"]
        # plain runc is Docker without eci: dockerd's own socket (the proxy would force the
        # eci runtime whatever --runtime says)
        direct = ["docker", "-H", f"unix://{state}/run/private/dockerd.sock"]
        variants = {
            "eci (sysbox-runc)": [*docker, "run", "--rm", "busybox", "true"],
            "plain runc": [*direct, "run", "--rm", "--runtime=runc", "busybox", "true"],
            "eci, 100k-file image": [*docker, "run", "--rm", MANY_FILES.name, "true"],
            "eci --privileged": [*docker, "run", "--rm", "--privileged", "busybox", "true"],
        }
        # calls the supervisor answers, inside one container each: 50 tmpfs mount+umount
        # pairs (eci --privileged vs runc with CAP_SYS_ADMIN and no seccomp), 200 sysinfo(2)
        # (`free`; every eci container) against plain runc
        mounts = "for i in $(seq 50); do mount -t tmpfs t /tmp && umount /tmp; done"
        sysinfos = "for i in $(seq 200); do free >/dev/null; done"
        runc_admin = ["--runtime=runc", "--cap-add=SYS_ADMIN", "--security-opt=seccomp=unconfined"]
        calls = {
            "50 mount+umount, eci --privileged": [
                *docker, "run", "--rm", "--privileged", "busybox", "sh", "-c", mounts,
            ],
            "50 mount+umount, plain runc": [
                *direct, "run", "--rm", *runc_admin, "busybox", "sh", "-c", mounts,
            ],
            "200 x free, eci": [*docker, "run", "--rm", "busybox", "sh", "-c", sysinfos],
            "200 x free, plain runc": [
                *direct, "run", "--rm", "--runtime=runc", "busybox", "sh", "-c", sysinfos,
            ],
        }  # fmt: skip
        variants.update(calls)
        for argv in variants.values():  # warm-up
            _timed(argv)
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, argv in variants.items():
                samples[name].append(_timed(argv))
        medians = {name: statistics.median(s) for name, s in samples.items()}
        print(f"eci up (cold engine start): {up_seconds:.2f} s")
        for name, median in medians.items():
            print(
                f"docker run --rm busybox true, {name}: median {median * 1000:.0f} ms "
                f"(n={args.runs})"
            )
        ratio = medians["eci (sysbox-runc)"] / medians["plain runc"]
        print(f"ratio eci / runc: {ratio:.2f}x (goal <= 1.10x)")
        privileged = medians["eci --privileged"] / medians["plain runc"]
        print(f"ratio eci --privileged / runc: {privileged:.2f}x")
        for what in ("50 mount+umount", "200 x free"):
            eci_run = next(m for n, m in medians.items() if n.startswith(what + ", eci"))
            runc_run = medians[f"{what}, plain runc"]
            per_call = (eci_run - runc_run) / (100 if what.startswith("50") else 200) * 1000
            print(f"{what}: eci / runc {eci_run / runc_run:.2f}x, +{per_call:.2f} ms per call")
        size_ratio = medians["eci, 100k-file image"] / medians["eci (sysbox-runc)"]
        print(f"ratio 100k-file image / busybox, both eci: {size_ratio:.2f}x (goal <= 1.10x)")
    finally:
        subprocess.run([ECI, "down", "--state-dir", str(state)], capture_output=True)
        settings.unlink(missing_ok=True)
        subprocess.run(["rm", "-rf", "--one-file-system", str(state)], check=False)


if __name__ == "__main__":
    main()
