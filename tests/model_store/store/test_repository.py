"""The store on disk: layout, name validation, versions, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from model_store import (
    InvalidModelNameError,
    ModelNotFoundError,
    ModelRepository,
    ModelSignature,
    StoreError,
    TensorSpec,
)

SIG = ModelSignature(inputs=(TensorSpec("x", "x:0", "DT_FLOAT", (-1, 2)),),
                     outputs=(TensorSpec("y", "y:0", "DT_FLOAT", (-1,)),))


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_write_version_lays_out_name_version_files(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    stored = repo.write_version("m", b"graph", SIG)
    assert stored.version == 1
    assert (tmp_path / "m" / "1" / "model.pb").read_bytes() == b"graph"
    assert ModelSignature.loads((tmp_path / "m" / "1" / "model.json").read_text()) == SIG
    assert repo.model_names() == ["m"]


def test_versions_default_to_the_next_free_number_and_latest_is_highest(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    assert [repo.write_version("m", b"g", SIG).version for _ in range(3)] == [1, 2, 3]
    repo.write_version("m", b"g", SIG, version=10)
    assert repo.get("m").version == 10
    assert repo.get("m", 2).version == 2
    assert repo.next_version("m") == 11


def test_an_existing_version_is_never_overwritten(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    repo.write_version("m", b"first", SIG, version=1)
    before = tree(tmp_path)
    with pytest.raises(StoreError, match="already has version 1"):
        repo.write_version("m", b"second", SIG, version=1)
    assert tree(tmp_path) == before


def test_a_failed_write_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    repo.write_version("m", b"g", SIG)
    before = tree(tmp_path)

    class Boom(ModelSignature):
        def dumps(self) -> str:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        repo.write_version("m", b"g", Boom(SIG.inputs, SIG.outputs))
    with pytest.raises(RuntimeError):
        repo.write_version("new", b"g", Boom(SIG.inputs, SIG.outputs))
    assert tree(tmp_path) == before
    assert sorted(os.listdir(tmp_path)) == ["m"]
    assert os.listdir(tmp_path / "m") == ["1"]


def test_incomplete_and_foreign_folders_are_not_versions(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    repo.write_version("m", b"g", SIG)
    (tmp_path / "m" / "2").mkdir()                      # half-written: no files
    (tmp_path / "m" / "0").mkdir()                      # not a positive version
    (tmp_path / "m" / ".incoming-x").mkdir()            # a write in progress
    (tmp_path / "m" / "notes").mkdir()
    (tmp_path / "empty").mkdir()                        # a model with no versions
    assert [v.version for v in repo.versions("m")] == [1]
    assert repo.model_names() == ["m"]


@pytest.mark.parametrize("name", ["../x", "..", ".", "a/b", "a\\b", "", "-x", "x" * 65,
                                  "a b", "\u00e9", "a\x00"])
def test_names_that_could_walk_the_file_system_are_refused(tmp_path: Path, name: str) -> None:
    repo = ModelRepository(tmp_path / "store")
    with pytest.raises(InvalidModelNameError):
        repo.write_version(name, b"g", SIG)
    with pytest.raises(ModelNotFoundError):
        repo.get(name)
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())


@pytest.mark.parametrize("version", [0, -1, True, 10**10])
def test_invalid_versions_are_refused(tmp_path: Path, version: int) -> None:
    repo = ModelRepository(tmp_path)
    repo.write_version("m", b"g", SIG)
    with pytest.raises(ModelNotFoundError):
        repo.get("m", version)


def test_missing_model_and_version_raise_model_not_found(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    repo.write_version("m", b"g", SIG)
    with pytest.raises(ModelNotFoundError, match="not in the store"):
        repo.get("other")
    with pytest.raises(ModelNotFoundError, match="no version 5"):
        repo.get("m", 5)


def test_store_that_is_not_a_folder_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        ModelRepository(tmp_path / "missing").model_names()
