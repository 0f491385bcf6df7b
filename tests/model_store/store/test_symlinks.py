"""Symbolic links in the store (L7): followed only while they stay inside it, never out."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from model_store import ModelRepository, ModelSignature, TensorSpec

SIG = ModelSignature(inputs=(TensorSpec("x", "x:0", "DT_FLOAT", (-1, 2)),),
                     outputs=(TensorSpec("y", "y:0", "DT_FLOAT", (-1,)),))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store with links of every kind: model folders, version folders and a model file,
    each once to a place inside the store and once to a place outside it."""
    root = tmp_path / "store"
    ModelRepository(root).write_version("real", b"graph-1", SIG, version=1)
    outside = tmp_path / "outside"
    ModelRepository(outside).write_version("stolen", b"secret", SIG, version=1)
    (outside / "secret.pb").write_bytes(b"secret")
    os.symlink(root / "real", root / "alias")  # model folder, inside (absolute link)
    os.symlink(outside / "stolen", root / "outm")  # model folder, outside
    os.symlink("1", root / "real" / "2")  # version folder, inside (relative link)
    os.symlink(outside / "stolen" / "1", root / "real" / "3")  # version folder, outside
    for version, target in ((4, "../1/model.pb"), (5, str(outside / "secret.pb"))):
        folder = root / "real" / str(version)
        folder.mkdir()
        os.symlink(target, folder / "model.pb")  # a model file, inside then outside
        (folder / "model.json").write_text(SIG.dumps())
    os.symlink(tmp_path / "nowhere", root / "broken")
    return root


def skipped(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "skipping" in r.getMessage()]


def test_links_inside_the_store_are_followed_and_links_out_are_skipped(
        store: Path, caplog: pytest.LogCaptureFixture) -> None:
    repo = ModelRepository(store)  # follow_symlinks="inside" is the default
    with caplog.at_level(logging.WARNING, logger="model_store.store.repository"):
        assert repo.model_names() == ["alias", "real"]
        assert [v.version for v in repo.versions("real")] == [1, 2, 4]
        assert [v.version for v in repo.versions("alias")] == [1, 2, 4]
        assert repo.get("real", 4).read_graph_bytes() == b"graph-1"
        assert repo.versions("outm") == []
    warned = skipped(caplog)
    for rel in ("outm", "real/3", "real/5/model.pb"):
        assert any(f"skipping {rel}: it is a symbolic link that leads out of the store" in w
                   for w in warned), warned
    assert not any(str(store.parent) in w for w in warned)  # named relative to the store
    assert all(b"secret" not in v.read_graph_bytes() for v in repo.all_versions())


def test_never_skips_every_link(store: Path, caplog: pytest.LogCaptureFixture) -> None:
    repo = ModelRepository(store, follow_symlinks="never")
    with caplog.at_level(logging.WARNING, logger="model_store.store.repository"):
        assert repo.model_names() == ["real"]
        assert [v.version for v in repo.versions("real")] == [1]
    warned = skipped(caplog)
    assert any("skipping alias: it is a symbolic link and follow_symlinks is 'never'" in w
               for w in warned), warned
    assert any("skipping real/4/model.pb" in w for w in warned)


def test_each_skipped_link_is_logged_once(store: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    repo = ModelRepository(store)
    with caplog.at_level(logging.WARNING, logger="model_store.store.repository"):
        for _ in range(3):  # the registry polls the store every few seconds
            repo.all_versions()
    warned = skipped(caplog)  # outm, real/3, real/5/model.pb, and the last two through alias
    assert len(warned) == len(set(warned)) == 5


def test_a_store_reached_through_a_link_serves_its_models(store: Path, tmp_path: Path) -> None:
    os.symlink(store, tmp_path / "current")
    repo = ModelRepository(tmp_path / "current")
    assert repo.model_names() == ["alias", "real"]
    assert [v.version for v in repo.versions("real")] == [1, 2, 4]


def test_an_unknown_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="follow_symlinks must be one of never, inside"):
        ModelRepository(tmp_path, follow_symlinks="always")


def test_the_server_setting_reaches_the_store(store: Path) -> None:
    from soap_server.app import build_app
    from soap_server.settings import Settings, SettingsError

    for policy, names in (("inside", ["alias", "real"]), ("never", ["real"])):
        app = build_app(Settings(model_store=str(store), follow_symlinks=policy).checked())
        assert app.registry.repository.model_names() == names
    with pytest.raises(SettingsError, match="follow_symlinks must be one of never, inside"):
        Settings().with_overrides({"follow_symlinks": "always"})
