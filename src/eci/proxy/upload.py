"""`docker cp` into a running eci container: the archive goes to the runtime's extractor,
which unpacks it inside the container as the container's root (`eci.runtime.cp.archive`).

dockerd would write through the container's idmapped root filesystem as host root, which has
no id there (EOVERFLOW). The extractor is a fresh `python3 -I -S` (it joins the container's
namespaces, which a threaded proxy cannot do), fed the request body as it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from eci.policy import ExtractInContainer
from eci.runtime import ENTRY, PYTHON
from eci.runtime.cp.archive import FAILED, STATUS

#: how much of the extractor's reason is kept for the answer
MAX_REASON = 4096


async def extract_in_container(
    decision: ExtractInContainer, body: AsyncIterator[bytes]
) -> tuple[int, str]:
    """Feed `body` to the extractor; (HTTP status, reason) — 200 and "" when done. The whole
    body is read even when the extractor stops early, so the connection stays usable."""
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "-I",
        "-S",
        ENTRY,
        "--eci-extract",
        str(decision.pid),
        decision.container_id,
        decision.path,
        "1" if decision.no_overwrite_dir_non_dir else "0",
        decision.chown_to,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    assert proc.stderr is not None
    try:
        feeding = True
        async for chunk in body:
            if not feeding:
                continue
            try:
                proc.stdin.write(chunk)
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                feeding = False  # it stopped (and says why): read the rest of the body
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.close()
        reason = (await proc.stderr.read(MAX_REASON)).decode(errors="replace").strip()
        code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if code == 0:
        return 200, ""
    return STATUS.get(code, 500), reason or f"the extractor failed (exit status {code or FAILED})"
