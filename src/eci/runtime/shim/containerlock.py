"""One container's staging, one process at a time.

The cleanup after a container's delete runs while containerd goes on (the runtime server does
it after answering), so the next create of the same container (`docker restart`) or a repeated
delete may come while it runs. Both stage, unstage and release by the container's id — and a
range released by a late cleanup would be the one the new create just took for the same owner.
So prepare and cleanup each hold the container's lock: `flock(2)` on `<runtime dir>/<id>.lock`,
which the kernel releases if the holder dies. The file lives as long as the staging does; the
last holder removes it while still holding the lock, and a locker that finds its file replaced
(or gone) after waiting tries again, so two processes never hold two different files.
"""

from __future__ import annotations

import fcntl
import os


class ContainerLock:
    """`with ContainerLock(runtime_dir, id) as lock:` …; `lock.remove()` ends the file's life
    (at exit, still under the lock)."""

    __slots__ = ("_fd", "_remove", "path")

    def __init__(self, runtime_dir: str, container_id: str) -> None:
        self.path = os.path.join(runtime_dir, f"{container_id}.lock")
        self._fd = -1
        self._remove = False

    def __enter__(self) -> ContainerLock:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                held = os.fstat(fd)
                try:
                    current = os.stat(self.path, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # its last holder removed it while we waited
                if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                    self._fd, fd = fd, -1
                    return self
            finally:
                if fd >= 0:
                    os.close(fd)

    def remove(self) -> None:
        self._remove = True

    def __exit__(self, *exc: object) -> None:
        try:
            if self._remove:
                os.unlink(self.path)
        finally:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = -1
