"""What the server should say loudly at start about how open it is."""

from __future__ import annotations

import ipaddress

from ..settings import Settings


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def security_warnings(settings: Settings) -> list[str]:
    """One line per way the server is open: anonymous calls, no TLS off loopback, passwords
    over plain HTTP. The caller logs each as a WARNING at start."""
    out = []
    tls = bool(getattr(settings, "tls_cert", "") or getattr(settings, "ssl_cert", ""))
    if not settings.users_file:
        out.append("no users file (--users): every caller may call every model anonymously")
    if not _loopback(settings.host) and not tls:
        out.append(f"listening on {settings.host} without TLS: requests, answers and any "
                   "credentials cross the network in clear text")
    if settings.users_file and settings.allow_password_text_over_http and not tls:
        out.append("allow_password_text_over_http is on: HTTP Basic and UsernameToken "
                   "PasswordText passwords are accepted in clear text")
    return out
