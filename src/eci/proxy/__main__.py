"""`python -m eci.proxy --listen SOCK --upstream SOCK --group GROUP`: started by `eci up`."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from eci.proxy.passthrough import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="eci-proxy")
    parser.add_argument("--listen", type=Path, required=True)
    parser.add_argument("--upstream", type=Path, required=True)
    parser.add_argument("--group", default="docker")
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.upstream, args.group))


if __name__ == "__main__":
    main()
