"""imageList matching by image identity: reference forms, images and settings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eci.dockerapi.imageref import InvalidReference
from eci.policy.imagelist import ImageEntry, ImageIdentity, ImageList

D_CLI = "sha256:" + "c" * 64  # what the registry says docker:cli is now
D_DIND = "sha256:" + "d" * 64  # docker:dind, pulled, then retagged docker:cli by a user
D_RYUK = "sha256:" + "e" * 64
L1, L2, L3 = ("sha256:" + x * 64 for x in "123")


def image(*repo_digests: str, layers: tuple[str, ...] = (L1,), id: str = "sha256:" + "0" * 64):
    return ImageIdentity.from_inspect(
        {"Id": id, "RepoDigests": list(repo_digests), "RootFS": {"Layers": list(layers)}}
    )


CLI = image(f"docker@{D_CLI}", layers=(L1,), id="sha256:" + "a" * 64)
DIND_RETAGGED = image(f"docker@{D_DIND}")
RYUK = image(f"testcontainers/ryuk@{D_RYUK}", layers=(L3,))
LOCAL_BUILT = image()  # no registry digest at all (built or imported here)
RETAGGED_BUSYBOX = image(f"busybox@{'sha256:' + 'b' * 64}")
ELSEWHERE = image(f"localhost:5000/library/docker@{D_CLI}")  # same digest, other repository
DERIVED = image(layers=(L1, L2))  # FROM docker:cli, one more layer
UNRELATED = image(layers=(L2, L3))

RESOLVED = {"docker.io/library/docker:cli": D_CLI}

CASES = [
    # entry, image, allowed
    ("docker:cli", CLI, True),
    ("docker.io/library/docker:cli", CLI, True),
    ("docker", CLI, False),  # docker:latest resolves to nothing here
    ("docker:cli", DIND_RETAGGED, False),  # the right repository, not the tag's digest
    ("docker:cli", RETAGGED_BUSYBOX, False),
    ("docker:cli", LOCAL_BUILT, False),
    ("docker:cli", ELSEWHERE, False),
    ("docker:*", CLI, True),
    ("docker:*", DIND_RETAGGED, True),  # any tag of the repository
    ("docker:*", RETAGGED_BUSYBOX, False),
    ("docker:*", LOCAL_BUILT, False),
    ("docker.io/testcontainers/ryuk:*", RYUK, True),
    ("testcontainers/ryuk:*", RYUK, True),
    ("testcontainers/ryuk:*", CLI, False),
    (f"docker@{D_CLI}", CLI, True),
    (f"docker:cli@{D_CLI}", CLI, True),  # a pin wins over the tag
    (f"docker@{D_DIND}", CLI, False),
    (f"docker@{D_CLI}", ELSEWHERE, False),
    ("*", LOCAL_BUILT, True),
    ("*", RETAGGED_BUSYBOX, True),
]


@pytest.mark.parametrize(("entry", "img", "allowed"), CASES)
@pytest.mark.parametrize("derived", [True, False])
def test_direct_matching(entry: str, img: ImageIdentity, allowed: bool, derived: bool) -> None:
    images = ImageList.from_settings([entry], allow_derived=derived)
    found = images.match(img, RESOLVED)
    assert (found is not None) == allowed
    if found is not None:
        assert found.entry.text == entry
        assert found.base is None
        assert found.wildcard == (entry == "*")


@pytest.mark.parametrize(
    ("entry", "img", "derived", "allowed"),
    [
        ("docker:cli", DERIVED, True, True),
        ("docker:cli", DERIVED, False, False),
        ("docker:*", DERIVED, True, True),
        (f"docker@{D_CLI}", DERIVED, True, True),
        ("docker:cli", UNRELATED, True, False),
        ("testcontainers/ryuk:*", DERIVED, True, False),  # its base is not an allowed image
    ],
)
def test_derived_images(entry: str, img: ImageIdentity, derived: bool, allowed: bool) -> None:
    images = ImageList.from_settings([entry], allow_derived=derived)
    found = images.match(img, RESOLVED, bases=[RYUK, CLI])
    assert (found is not None) == allowed
    if found is not None:
        assert found.base == CLI.id


def test_same_layers_with_other_config_is_derived() -> None:
    """FROM docker:cli plus only CMD/ENV: the layer chain is the base's."""
    images = ImageList.from_settings(["docker:cli"], allow_derived=True)
    assert images.match(image(layers=(L1,)), RESOLVED, bases=[CLI]) is not None


def test_a_base_without_layers_derives_nothing() -> None:
    empty = image(f"docker@{D_CLI}", layers=())
    images = ImageList.from_settings(["docker:cli"], allow_derived=True)
    assert images.match(UNRELATED, RESOLVED, bases=[empty]) is None


def test_an_unresolved_tag_matches_nothing() -> None:
    images = ImageList.from_settings(["docker:cli"], allow_derived=True)
    assert images.match(CLI, {}) is None
    assert images.match(CLI, {"docker.io/library/docker:cli": None}) is None
    assert images.resolvable == {"docker.io/library/docker:cli"}


@pytest.mark.parametrize(
    ("text", "repository", "tag", "digest"),
    [
        ("*", None, None, None),
        ("docker:cli", "docker.io/library/docker", "cli", None),
        ("docker", "docker.io/library/docker", "latest", None),
        ("docker:*", "docker.io/library/docker", None, None),
        ("localhost:5000/x/y:*", "localhost:5000/x/y", None, None),
        (f"docker:cli@{D_CLI}", "docker.io/library/docker", None, D_CLI),
        ("index.docker.io/library/docker:cli", "docker.io/library/docker", "cli", None),
    ],
)
def test_entry_forms(
    text: str, repository: str | None, tag: str | None, digest: str | None
) -> None:
    assert ImageEntry.parse(text) == ImageEntry(text, repository, tag, digest)


@pytest.mark.parametrize("text", ["", "Docker", "docker:cli:*", "docker@sha256:short", "*:*"])
def test_bad_entries_are_refused_and_dropped(text: str) -> None:
    with pytest.raises(InvalidReference):
        ImageEntry.parse(text)
    assert ImageList.from_settings([text], True).entries == ()


def test_odd_inspect_data_is_ignored() -> None:
    found = ImageIdentity.from_inspect({"Id": "x", "RepoDigests": ["docker", 3, "no@digest"]})
    assert found == ImageIdentity("x")


@given(
    st.lists(st.sampled_from([e for e, _, _ in CASES]), max_size=4),
    st.sampled_from([img for _, img, _ in CASES]),
    st.booleans(),
)
def test_a_list_allows_exactly_what_one_of_its_entries_allows(
    entries: list[str], img: ImageIdentity, derived: bool
) -> None:
    whole = ImageList.from_settings(entries, derived).match(img, RESOLVED, bases=[CLI])
    each = [
        ImageList.from_settings([e], derived).match(img, RESOLVED, bases=[CLI]) for e in entries
    ]
    assert (whole is not None) == any(m is not None for m in each)
