"""CVE-2024-21626: a working directory in a file descriptor runc leaked from the host.

runc before 1.1.12 left a descriptor of the host's /sys/fs/cgroup open into the container's
start; ``-w /proc/self/fd/N`` then puts the process in the host's filesystem, outside the
container's root. dockerd passes any working directory to the runtime unchecked, so eci must
refuse these itself, at create, before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.security.escape import container, host_file
from tests.support import EngineHandle

pytestmark = pytest.mark.engine

#: the descriptors runc may have open when it enters the working directory
FDS = range(4, 13)


@pytest.fixture
def marker() -> Iterator[Path]:
    """A host file only a process in the host's filesystem can read."""
    with host_file("eci-cve-", "host marker\n") as path:
        yield path


def test_working_directory_in_a_leaked_fd_is_refused(engine: EngineHandle, marker: Path) -> None:
    """The control is plain runc, no extra privilege: on a vulnerable runc one of these
    descriptors reaches the host. A patched runc (Debian's 1.1.5+ds1-1+deb12u1 is) fails
    them in its container init: either way dockerd handed the request on unchecked."""
    script = f"cat ../../../../../../..{marker}"
    for fd in FDS:
        workdir = ("-w", f"/proc/self/fd/{fd}")
        control = container(
            engine, script, "--runtime=runc", *workdir, direct=True, must_start=False
        )
        reached = control.stdout == marker.read_text()
        assert reached or "error during container init" in control.stderr, control

        refused = container(
            engine, script, "--privileged", *workdir, direct=False, must_start=False
        )
        assert not refused.started
        assert refused.returncode != 0
        assert "working directory" in refused.stderr, refused
