"""Reference parsing: every spelling skopeo and podman users write, and the malformed ones."""

from __future__ import annotations

import os

import pytest

from sandpool.errors import InvalidImage
from sandpool.images import Transport, parse_reference


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("busybox", "docker://docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker://docker.io/library/busybox:1.36"),
        ("docker://busybox", "docker://docker.io/library/busybox:latest"),
        ("docker://docker.io/library/busybox:latest", "docker://docker.io/library/busybox:latest"),
        ("user/repo:v1", "docker://docker.io/user/repo:v1"),
        ("quay.io/org/app:2", "docker://quay.io/org/app:2"),
        ("localhost:5000/app", "docker://localhost:5000/app:latest"),
        ("127.0.0.1:5000/a/b:c", "docker://127.0.0.1:5000/a/b:c"),
        ("localhost/app:1", "docker://localhost/app:1"),
        (f"app@sha256:{'a' * 64}", f"docker://docker.io/library/app@sha256:{'a' * 64}"),
        ("oci-archive:/x/img.tar", "oci-archive:/x/img.tar"),
        ("docker-archive:/x/img.tar", "docker-archive:/x/img.tar"),
        ("docker-archive:/x/img.tar:foo/bar:1", "docker-archive:/x/img.tar:foo/bar:1"),
        ("oci:/x/layout", "oci:/x/layout"),
        ("oci:/x/layout:v2", "oci:/x/layout:v2"),
        ("builtin:default", "builtin:default"),
    ],
)
def test_key_is_canonical(text: str, key: str) -> None:
    assert parse_reference(text).key == key


def test_text_is_kept_as_written() -> None:
    assert parse_reference("busybox").text == "busybox"


def test_relative_paths_become_absolute() -> None:
    ref = parse_reference("oci-archive:img.tar")
    assert ref.local_path == os.path.join(os.getcwd(), "img.tar")
    assert ref.transport is Transport.OCI_ARCHIVE


@pytest.mark.parametrize(
    ("text", "insecure"),
    [
        ("127.0.0.1:5000/a:b", True),
        ("localhost:5000/a:b", True),
        ("docker://[::1]:5000/a:b", True),
        ("quay.io/a:b", False),
        ("busybox", False),
        ("oci:/x", False),
    ],
)
def test_only_loopback_registries_are_insecure(text: str, insecure: bool) -> None:
    assert parse_reference(text).insecure is insecure


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("/tmp/img.tar", "a path needs a transport"),
        ("./img.tar", "a path needs a transport"),
        ("oci-archive:", "no path"),
        ("docker:busybox", "docker://"),
        ("Busybox:latest", "invalid image reference 'Busybox:latest'"),
        ("busybox:bad tag", "invalid image reference"),
        ("builtin:Nope!", "bad builtin name"),
        ("a@sha256:123", "invalid image reference"),
    ],
)
def test_malformed_references_name_themselves(text: str, fragment: str) -> None:
    with pytest.raises(InvalidImage) as info:
        parse_reference(text)
    assert fragment in str(info.value)
