"""`python -m eci.proxy --state-dir DIR [--group docker] [--body-limit N]`: started by `eci up`."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from eci.engine.layout import EngineLayout
from eci.proxy.server import DEFAULT_BODY_LIMIT, Proxy, SettingsUnreadable


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
    asyncio.run(proxy.serve(layout.user_socket))


if __name__ == "__main__":
    main()
