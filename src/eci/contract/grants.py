"""Where a granted Docker socket lives, and what its token looks like.

The proxy makes a token per grant, listens on ``<grants dir>/<token>/docker.sock`` and
redirects the container's socket bind there; the runtime shim lets exactly such a path
through its restricted-mount check. Both sides build and read the path with these functions,
so they cannot drift apart. Stdlib-free (no ``re``): the runtime imports it on every create.
"""

from __future__ import annotations

#: the socket's name inside its token's directory
GRANT_SOCKET = "docker.sock"
#: random bytes in a token, written as lowercase hex: short, as unix socket paths are at most
#: 107 bytes
TOKEN_BYTES = 8
HEX_DIGITS = "0123456789abcdef"


def is_token(text: str) -> bool:
    """A grant token: exactly ``2 * TOKEN_BYTES`` lowercase hex digits (so also a safe name
    for the one directory the proxy removes)."""
    return len(text) == 2 * TOKEN_BYTES and all(c in HEX_DIGITS for c in text)


def grant_path(grants_dir: str, token: str) -> str:
    """The socket of grant ``token``."""
    return f"{grants_dir.rstrip('/')}/{token}/{GRANT_SOCKET}"


def is_grant_path(path: str, grants_dir: str) -> bool:
    """``path`` (resolved: no ``..``, no doubled ``/``) is exactly the socket of some grant;
    never anything when no grants dir is configured."""
    prefix = grants_dir.rstrip("/") + "/"
    if not grants_dir or not path.startswith(prefix):
        return False
    token, sep, name = path[len(prefix) :].partition("/")
    return bool(sep) and name == GRANT_SOCKET and is_token(token)
