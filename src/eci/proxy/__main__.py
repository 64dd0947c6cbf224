"""`python -m eci.proxy --state-dir DIR [--group docker] [--body-limit N]`: started by `eci up`."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
from pathlib import Path

from eci.engine.layout import EngineLayout
from eci.proxy.server import DEFAULT_BODY_LIMIT, Proxy, SettingsUnreadable

M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3


def _keep_stream_buffers_on_the_heap() -> None:
    """Every socket read allocates a fresh bytes object of up to 256 KiB, which glibc serves
    with mmap and gives back with munmap (a page fault per 4 KiB, twice per relayed byte).
    Raising the mmap and trim thresholds keeps those buffers on the heap and reuses them;
    measured with bench/proxy.py, RSS stays well under the 64 MiB goal."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024)
        libc.mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024)
    except (OSError, AttributeError):  # not glibc: only slower
        pass


def main() -> None:
    parser = argparse.ArgumentParser(prog="eci-proxy")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--group", default="docker")
    parser.add_argument("--body-limit", type=int, default=DEFAULT_BODY_LIMIT)
    args = parser.parse_args()
    layout = EngineLayout.for_state_dir(args.state_dir)
    try:
        proxy = Proxy(layout, args.group, args.body_limit)
    except SettingsUnreadable as exc:
        raise SystemExit(f"eci proxy: refusing to start: {exc}") from exc
    _keep_stream_buffers_on_the_heap()
    asyncio.run(proxy.serve(layout.user_socket))


if __name__ == "__main__":
    main()
