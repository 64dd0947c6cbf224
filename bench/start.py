"""Container start cost under eci vs plain runc, side by side in one run.

Starts a private eci engine (ECI on) on a temporary state dir, builds the test images, then
alternates `docker run --rm busybox true` with the eci runtime (the default, `sysbox-runc`) and
with `--runtime=runc`, so both see the same machine state. Prints medians and their ratio as
JSON-ish lines, and tears the engine down.

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
        _run(ECI, "up", "--state-dir", str(state), "--admin-settings", str(settings))
        up_seconds = time.perf_counter() - t0
        _run(ECI, "images", "--state-dir", str(state))
        docker = ["docker", "-H", f"unix://{state}/run/docker.sock"]
        variants = {
            "eci (sysbox-runc)": [*docker, "run", "--rm", "busybox", "true"],
            "plain runc": [*docker, "run", "--rm", "--runtime=runc", "busybox", "true"],
        }
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
        print(f"ratio eci / runc: {ratio:.2f}x")
    finally:
        subprocess.run([ECI, "down", "--state-dir", str(state)], capture_output=True)
        settings.unlink(missing_ok=True)
        subprocess.run(["rm", "-rf", "--one-file-system", str(state)], check=False)


if __name__ == "__main__":
    main()
