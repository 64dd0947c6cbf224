"""The engine's own bridge interface.

dockerd can only be kept off the host's `docker0` by handing it a bridge that already exists, so
eci creates one per engine and marks it with an interface alias naming the engine's state dir;
only a bridge carrying our exact mark is ever deleted.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path

from eci.errors import EngineError

SUBNET_POOL = ipaddress.IPv4Network("10.213.0.0/16")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(["ip", *args], capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise EngineError("the `ip` command (iproute2) is missing; run `make setup`") from exc
    if check and result.returncode != 0:
        raise EngineError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _links() -> list[dict[str, object]]:
    return list(json.loads(_ip("-j", "link", "show").stdout or "[]"))


def _used_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for link in json.loads(_ip("-j", "-4", "addr", "show").stdout or "[]"):
        for info in link.get("addr_info", []):
            used.append(ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}").network)
    for route in json.loads(_ip("-j", "-4", "route", "show").stdout or "[]"):
        dst = route.get("dst", "default")
        if dst != "default":
            used.append(ipaddress.ip_network(dst, strict=False))
    return used


def mark_for(state_dir: Path) -> str:
    return f"eci:{state_dir}"


def bridge_exists(name: str) -> bool:
    return any(link.get("ifname") == name for link in _links())


def owned_bridge(name: str, state_dir: Path) -> bool:
    return any(
        link.get("ifname") == name and link.get("ifalias") == mark_for(state_dir)
        for link in _links()
    )


def pick_subnet(seed: int) -> ipaddress.IPv4Network:
    """A free /24 from the pool, starting at a position derived from the engine's tag."""
    used = _used_networks()
    subnets: list[ipaddress.IPv4Network] = list(SUBNET_POOL.subnets(new_prefix=24))
    for i in range(len(subnets)):
        candidate = subnets[(seed + i) % len(subnets)]
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise EngineError(f"no free /24 left in {SUBNET_POOL} for the eci bridge")


def bridge_cidr(name: str) -> str | None:
    for link in json.loads(_ip("-j", "-4", "addr", "show", "dev", name).stdout or "[]"):
        for info in link.get("addr_info", []):
            return f"{info['local']}/{info['prefixlen']}"
    return None


def ensure_bridge(name: str, state_dir: Path, seed: int) -> str:
    """Create (or adopt our own existing) bridge; returns its address in CIDR form."""
    if bridge_exists(name):
        if not owned_bridge(name, state_dir):
            raise EngineError(
                f"network interface {name!r} exists but was not created by this eci engine "
                f"({state_dir}); remove it or use another --state-dir"
            )
        cidr = bridge_cidr(name)
        if cidr:
            return cidr
    else:
        _ip("link", "add", name, "type", "bridge")
        _ip("link", "set", name, "alias", mark_for(state_dir))
    subnet = pick_subnet(seed)
    cidr = f"{subnet.network_address + 1}/{subnet.prefixlen}"
    _ip("addr", "add", cidr, "dev", name)
    _ip("link", "set", name, "up")
    return cidr


def remove_bridge(name: str, state_dir: Path) -> bool:
    """Delete the bridge only if it carries this engine's mark."""
    if not owned_bridge(name, state_dir):
        return False
    _ip("link", "del", name)
    return True
