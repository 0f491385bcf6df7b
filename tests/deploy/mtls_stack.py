"""The mutual TLS stack the nginx and the Java/C# client-certificate tests share: a real tfsoap
server on 127.0.0.1 that trusts 127.0.0.1 as its TLS proxy (``trusted_proxies``), and a real
nginx in front of it running ``deploy/nginx/tfsoap-mtls.conf.template`` (the file
docs/security.md quotes) with the test CA's server certificate and client CA.

nginx missing skips the tests that need it, except on CI (``CI=true``), where it fails them.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest

from tests.conftest import in_ci
from tests.soap_server.security.certs import TlsMaterial

from .processes import REPO, Nginx

TEMPLATE = REPO / "deploy" / "nginx" / "tfsoap-mtls.conf.template"


def require_nginx() -> None:
    """Skip (fail on CI) unless the ``nginx`` command is there."""
    if shutil.which("nginx") is None:
        message = "nginx missing; install it with: apt-get install -y --no-install-recommends nginx"
        if in_ci():
            pytest.fail(message + " [CI=true: the mutual TLS proxy test must run]",
                        pytrace=False)
        pytest.skip(message)


@contextmanager
def mtls_stack(folder: Path, store: Path, tls: TlsMaterial, users: Mapping[str, Any],
               **settings: Any) -> Iterator[tuple[Any, Nginx]]:
    """tfsoap serving ``store`` with ``users`` (name -> ``User``) and ``settings``, behind nginx
    terminating mutual TLS with ``tls``: yields (the running server, nginx). ``folder`` gets
    the users file and nginx's prefix."""
    require_nginx()
    from soap_server.app import start_server
    from soap_server.security import save_users
    from soap_server.settings import Settings

    save_users(folder / "users.toml", dict(users))
    srv = start_server(Settings(
        model_store=str(store), host="127.0.0.1", port=0, users_file=str(folder / "users.toml"),
        trusted_proxies="127.0.0.1", lockout_failures=0, **settings))
    nginx = Nginx(folder / "nginx")
    try:
        assert srv.wait_ready(120), "test models did not load"
        nginx.configure(f"server 127.0.0.1:{srv.port};", TEMPLATE,
                        TFSOAP_TLS_CERT=str(tls.server_cert), TFSOAP_TLS_KEY=str(tls.server_key),
                        TFSOAP_CLIENT_CA=str(tls.ca_cert))
        nginx.start()
        yield srv, nginx
    finally:
        nginx.stop()
        srv.stop()
