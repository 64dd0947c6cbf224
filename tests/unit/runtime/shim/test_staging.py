"""Pure parts of staging: mountinfo paths and the overlay2 layout dockerd hands over."""

from __future__ import annotations

from pathlib import Path

import pytest

from eci.errors import RuntimeShimError
from eci.runtime.linux.mountinfo import unescape
from eci.runtime.shim.staging import overlay_layers


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ("/tmp/my\\040eci/run", "/tmp/my eci/run"),
        ("/a\\011b", "/a\tb"),
        ("/back\\134slash", "/back\\slash"),
        ("/plain", "/plain"),
    ],
    ids=["space", "tab", "backslash", "plain"],
)
def test_mountinfo_escapes_are_decoded(field: str, path: str) -> None:
    assert unescape(field) == path


def test_overlay_layers_follow_dockers_short_links(tmp_path: Path) -> None:
    overlay2 = tmp_path / "overlay2"
    for layer in ("img1", "img2", "ctr"):
        (overlay2 / layer / "diff").mkdir(parents=True)
    (overlay2 / "l").mkdir()
    (overlay2 / "l" / "AAA").symlink_to("../img1/diff")
    (overlay2 / "l" / "BBB").symlink_to("../img2/diff")
    (overlay2 / "ctr" / "lower").write_text("l/BBB:l/AAA")
    lowers, layer_dir = overlay_layers(str(overlay2 / "ctr" / "merged"), str(tmp_path))
    assert lowers == [str(overlay2 / "img2" / "diff"), str(overlay2 / "img1" / "diff")]
    assert layer_dir == str(overlay2 / "ctr")


def test_a_rootfs_outside_overlay2_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeShimError, match="overlay2 storage driver"):
        overlay_layers(str(tmp_path / "vfs" / "x" / "merged"), str(tmp_path))
