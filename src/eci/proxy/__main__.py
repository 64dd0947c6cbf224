"""`python -m eci.proxy --state-dir DIR [--group docker] [--body-limit N]`: started by `eci up`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
from pathlib import Path

from eci.engine.layout import EngineLayout
from eci.proxy.limits import POLICED_BODY_LIMIT, Limits
from eci.proxy.memory import keep_stream_buffers_on_the_heap
from eci.proxy.server import Proxy, SettingsUnreadable


def _allow_many_connections() -> None:
    """Each client connection takes two descriptors (the client's, dockerd's): raise the soft
    limit to the hard one, so that the per-uid connection cap, not the descriptor limit,
    is what a user runs into."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    parser = argparse.ArgumentParser(prog="eci-proxy")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--group", default="docker")
    parser.add_argument(
        "--body-limit",
        type=int,
        default=POLICED_BODY_LIMIT,
        help="the largest policed request body, in bytes",
    )
    args = parser.parse_args()
    layout = EngineLayout.for_state_dir(args.state_dir)
    try:
        proxy = Proxy(layout, args.group, Limits(policed_body=args.body_limit))
    except SettingsUnreadable as exc:
        raise SystemExit(f"eci proxy: refusing to start: {exc}") from exc
    keep_stream_buffers_on_the_heap()
    _allow_many_connections()
    asyncio.run(proxy.serve(layout.user_socket))


if __name__ == "__main__":
    main()
