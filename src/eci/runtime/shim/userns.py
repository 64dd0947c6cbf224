"""User namespaces made ahead for the id ranges allocation hands out next (after runc's
`userns.Handles`).

Every create idmaps its rootfs and binds through a user namespace that maps 0..65535 onto the
container's range, and making one costs a fork (~2 ms) on the start's path. The runtime server
keeps them made for the next ranges; the workers it forks inherit them.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


def _userns_fd(base: int) -> int:
    from eci.runtime.linux.mounts import userns_fd

    return userns_fd(base)


class UsernsHandles:
    """fds of user namespaces mapping 0..65535 onto a range, by the range's base id.

    `keep_only` makes those of the upcoming ranges and closes the others; `take` hands a
    range's fd out once (the taker closes it) and makes one when none was made ahead, as in a
    fresh interpreter, which has none."""

    __slots__ = ("_fds", "_make")

    def __init__(self, make: Callable[[int], int] = _userns_fd) -> None:
        self._fds: dict[int, int] = {}
        self._make = make

    def made(self) -> list[int]:
        """The bases whose namespace is made, ascending."""
        return sorted(self._fds)

    def keep_only(self, bases: Iterable[int]) -> None:
        """Keep made exactly the namespaces of `bases`: close the others, make the missing."""
        upcoming = set(bases)
        for base in set(self._fds) - upcoming:
            os.close(self._fds.pop(base))
        for base in sorted(upcoming - set(self._fds)):
            self._fds[base] = self._make(base)

    def take(self, base: int) -> int:
        """An fd of the namespace of the range at `base`, the caller's to close."""
        fd = self._fds.pop(base, None)
        return fd if fd is not None else self._make(base)

    def close(self) -> None:
        self.keep_only(())
