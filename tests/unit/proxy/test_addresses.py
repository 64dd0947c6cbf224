"""The host's own addresses, read from /proc text handed to the parsers."""

from __future__ import annotations

from eci.proxy.addresses import _ipv4_local, _ipv6_local

FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
     |-- 192.0.2.0
        /24 link UNICAST
     |-- 192.0.2.2
        /32 host LOCAL
     |-- 192.0.2.255
        /32 link BROADCAST
"""
IF_INET6 = """00000000000000000000000000000001 01 80 10 80       lo
fe800000000000000000000000000002 02 40 20 80     eth0
"""


def test_local_ipv4_addresses_are_the_host_leaves() -> None:
    assert _ipv4_local(FIB_TRIE) == {"127.0.0.1", "192.0.2.2"}


def test_local_ipv6_addresses() -> None:
    assert _ipv6_local(IF_INET6) == {"::1", "fe80::2"}
