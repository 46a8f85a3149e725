"""Which containers a state dir owns (``worker.ownership``): its id namespace and annotation."""

from __future__ import annotations

import re
from pathlib import Path

from sandpool.worker.ownership import (
    STATE_DIR_ANNOTATION,
    new_container_id,
    owner_tag,
    owns_container,
    state_dir_identity,
)


def test_each_state_dir_has_its_own_id_namespace(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    ids = {new_container_id(a) for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(rf"sp-{owner_tag(a)}-[0-9a-f]{{16}}", i) for i in ids)
    assert owner_tag(a) != owner_tag(b)
    assert not any(owns_container(b, i, {}) for i in ids)


def test_two_spellings_of_one_state_dir_own_the_same_containers(tmp_path: Path) -> None:
    real = tmp_path / "state"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    container_id = new_container_id(tmp_path / "link")
    assert owns_container(str(real), container_id, {STATE_DIR_ANNOTATION: str(real)})
    assert state_dir_identity(tmp_path / "link") == str(real)


def test_the_annotation_must_name_the_state_dir_where_the_runtime_reports_one(
    tmp_path: Path,
) -> None:
    mine = new_container_id(tmp_path)
    assert owns_container(tmp_path, mine, {STATE_DIR_ANNOTATION: str(tmp_path)})
    assert owns_container(tmp_path, mine, {})  # a runtime that lists no annotations
    assert not owns_container(tmp_path, mine, {STATE_DIR_ANNOTATION: "/elsewhere"})
    assert not owns_container(tmp_path, "sp-0123456789abcdef", {})  # an older version's id
    assert not owns_container(tmp_path, "other-" + mine, {})
