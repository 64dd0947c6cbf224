"""The cache of user namespaces made ahead (shim/userns.py): each handed out once and then the
taker's, closed once its range is no longer upcoming, made on the spot when absent.

The namespaces are stood in for by pipe fds, told apart by their inode (fd numbers are reused)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from eci.runtime.shim.userns import UsernsHandles


class FakeMaker:
    """Makes a pipe's read end per call and records which base it was for."""

    def __init__(self) -> None:
        self.made: list[int] = []
        self.fds: list[int] = []
        self.inodes: list[int] = []

    def __call__(self, base: int) -> int:
        read, write = os.pipe()
        os.close(write)
        self.made.append(base)
        self.fds.append(read)
        self.inodes.append(os.fstat(read).st_ino)
        return read

    def is_open(self, nth: int) -> bool:
        """Is the nth fd made still open (and not a later one under the same number)?"""
        try:
            return os.fstat(self.fds[nth]).st_ino == self.inodes[nth]
        except OSError:
            return False

    def close_all(self) -> None:
        for nth, fd in enumerate(self.fds):
            if self.is_open(nth):
                os.close(fd)


@pytest.fixture
def maker() -> Iterator[FakeMaker]:
    made = FakeMaker()
    yield made
    made.close_all()


def test_made_ahead_are_handed_out_once(maker: FakeMaker) -> None:
    handles = UsernsHandles(maker)
    handles.keep_only([65536, 131072])
    assert maker.made == [65536, 131072]
    assert handles.take(65536) == maker.fds[0]
    assert handles.made() == [131072]  # the taker's now: not handed out again
    assert maker.is_open(0)  # taking does not close it
    assert handles.take(65536) == maker.fds[2]  # a new one is made
    assert maker.made == [65536, 131072, 65536]


def test_an_absent_one_is_made_on_the_spot(maker: FakeMaker) -> None:
    handles = UsernsHandles(maker)  # as in a fresh interpreter: nothing made ahead
    assert handles.take(196608) == maker.fds[0]
    assert maker.made == [196608]
    assert handles.made() == []


def test_those_no_longer_upcoming_are_closed(maker: FakeMaker) -> None:
    handles = UsernsHandles(maker)
    handles.keep_only([1, 2, 3])
    handles.keep_only([2, 3, 4])
    assert [maker.is_open(nth) for nth in range(3)] == [False, True, True]
    assert maker.made == [1, 2, 3, 4]  # the kept ones are not made again
    assert handles.made() == [2, 3, 4]
    handles.close()
    assert handles.made() == []
    assert not any(maker.is_open(nth) for nth in range(4))


def test_a_failure_to_make_one_keeps_those_made(maker: FakeMaker) -> None:
    def failing(base: int) -> int:
        if base == 3:
            raise OSError("unshare(CLONE_NEWUSER) failed in the helper process")
        return maker(base)

    handles = UsernsHandles(failing)
    with pytest.raises(OSError, match="unshare"):
        handles.keep_only([1, 2, 3])
    assert handles.made() == [1, 2]
    assert [maker.is_open(0), maker.is_open(1)] == [True, True]
