"""The TLS files checked before the server starts, and the caller a client certificate makes.

granian does TLS in rustls and fails inside a worker on a bad file, so the files are first read
here with the standard library's ``ssl`` (the same PEM formats): a missing file, a key that does
not match its certificate or a CA file with no certificate is one ``SettingsError`` line.

granian (2.8) gives the application no view of the client's certificate (its RSGI scope,
like its ASGI one, has no TLS extension), so a certificate's subject cannot name a user. What
mutual TLS can prove is that the client holds a certificate from ``tls_client_ca``: with
``tls_client_auth = required`` every request on the port has one, and ``tls_client_role`` gives
such a caller a role. Subjects name users only behind a TLS-terminating proxy that passes them
on (``client_certs``).
"""

from __future__ import annotations

import ssl

from ..settings import Settings, SettingsError
from .access import Caller
from .users import valid_name

#: The name a certificate-authenticated caller has in logs (it cannot be the subject's CN).
TLS_CLIENT = "tls-client"


def check_tls_files(settings: Settings) -> None:
    """``SettingsError`` unless the TLS files of ``settings`` can be read and fit together."""
    if not settings.tls_cert:
        return
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        for path in (settings.tls_cert, settings.tls_key, settings.tls_client_ca):
            if path:
                with open(path, "rb"):
                    pass
        ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
    except FileNotFoundError as exc:
        raise SettingsError(f"TLS file not found: {exc.filename}") from None
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(f"tls_cert {settings.tls_cert} and tls_key {settings.tls_key}: not "
                            "a PEM certificate with its matching unencrypted PEM key "
                            f"({getattr(exc, 'reason', None) or exc.strerror or 'unreadable'})"
                            ) from None
    if settings.tls_client_ca:
        try:
            ctx.load_verify_locations(cafile=settings.tls_client_ca)
        except FileNotFoundError:
            raise SettingsError(f"TLS file not found: {settings.tls_client_ca}") from None
        except (ssl.SSLError, OSError):
            raise SettingsError(f"tls_client_ca {settings.tls_client_ca}: no PEM CA "
                                "certificate in it") from None
    if settings.tls_client_role and not valid_name(settings.tls_client_role):
        raise SettingsError(f"tls_client_role {settings.tls_client_role!r} is not a role name")


def certificate_caller(settings: Settings) -> Caller | None:
    """The caller of a request that came with a verified client certificate and no password,
    or None when certificates give no role (``tls_client_role`` empty)."""
    if not settings.tls_client_role or settings.tls_client_auth != "required":
        return None
    return Caller(TLS_CLIENT, frozenset({settings.tls_client_role}), "tls-client")
