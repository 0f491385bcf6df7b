"""A secured server: a users file with three users, roles per model, passwords over plain HTTP
allowed (these tests run without TLS), and a factory for servers with other settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from soap_server.security import User, hash_password, save_users

PASSWORDS = {"alice": "alice-Pw-7341", "olga": "olga-Pw-9902", "dora": "dora-Digest-5518"}
MODEL_ROLES = "affine=scoring;scalar=ops"


@pytest.fixture(scope="session")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alice (scrypt hash, role scoring), olga (hash, ops), dora (digest secret, scoring)."""
    path = tmp_path_factory.mktemp("users") / "users.toml"
    save_users(path, {
        "alice": User("alice", frozenset({"scoring"}), hash_password(PASSWORDS["alice"])),
        "olga": User("olga", frozenset({"ops"}), hash_password(PASSWORDS["olga"])),
        "dora": User("dora", frozenset({"scoring"}), digest_secret=PASSWORDS["dora"]),
    })
    return path


@pytest.fixture(scope="session")
def start_secured(test_store: Path, users_file: Path) -> Iterator[Callable[..., Any]]:
    """Start a server on a loopback port with the users file and ``overrides``."""
    from soap_server.app import start_server
    from soap_server.settings import Settings

    started = []

    def start(**overrides: Any) -> Any:
        values: dict[str, Any] = dict(
            model_store=str(test_store), port=0, host="127.0.0.1", threads=16,
            max_body_bytes=4 * 1024 * 1024, request_timeout_s=20.0, users_file=str(users_file),
            allow_password_text_over_http=True, model_roles=MODEL_ROLES, status_role="ops",
            lockout_failures=0)
        values.update(overrides)
        srv = start_server(Settings(**values))
        started.append(srv)
        assert srv.wait_ready(120), "test models did not load"
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture(scope="session")
def secured(start_secured: Callable[..., Any]) -> Any:
    return start_secured()
