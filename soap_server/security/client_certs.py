"""Client certificates verified by a trusted TLS-terminating proxy, and their subjects as names.

granian gives the application no view of the client certificate (``tls.py``), so a certificate
can name a user only when TLS ends at a reverse proxy that verified it and passes the result on:
nginx's ``ssl_verify_client`` with ``$ssl_client_verify`` (``SUCCESS``, ``NONE`` or
``FAILED:reason``) and ``$ssl_client_s_dn`` (the subject, RFC 2253/4514 text since nginx
1.11.6) in two request headers. Anyone can send those headers, so they count only from the
addresses in ``trusted_proxies``; from any other peer they are ignored, with one WARNING per
peer per hour (a bounded table), never trusted.

A subject is parsed with the ``cryptography`` package's RFC 4514 parser (escapes, ``\\XX`` UTF-8
bytes, multi-valued RDNs), with OpenSSL's short names (``emailAddress``, ``serialNumber``...)
added, and compared as a ``SubjectKey``: the RDNs in order, each a set of (OID, value) with the
value case-folded and its runs of spaces collapsed (LDAP's caseIgnoreMatch, near enough). So
``CN=Batch,O=Bank`` and ``cn=batch,o=bank`` are the same subject; ``O=Bank,CN=batch`` is not.
The parser is strict RFC 4514: no spaces around the commas (nginx writes none).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

from ..settings import Settings, parse_networks

log = logging.getLogger(__name__)

#: A subject as compared: RDNs in order, each a set of (dotted OID, folded value).
SubjectKey = tuple[frozenset[tuple[str, str]], ...]
#: Longest subject text read from a header (nginx's are far shorter).
MAX_SUBJECT = 4096
_WARN_EVERY_S = 3600.0
_WARNED_PEERS = 1024

#: OpenSSL's short names that ``cryptography``'s parser does not know (it knows CN, L, ST, O,
#: OU, C, STREET, DC, UID).
_OPENSSL_NAMES: dict[str, ObjectIdentifier] = {
    "emailAddress": NameOID.EMAIL_ADDRESS, "serialNumber": NameOID.SERIAL_NUMBER,
    "title": NameOID.TITLE, "SN": NameOID.SURNAME, "GN": NameOID.GIVEN_NAME,
    "givenName": NameOID.GIVEN_NAME, "initials": NameOID.INITIALS,
    "pseudonym": NameOID.PSEUDONYM, "generationQualifier": NameOID.GENERATION_QUALIFIER,
    "dnQualifier": NameOID.DN_QUALIFIER, "businessCategory": NameOID.BUSINESS_CATEGORY,
    "postalCode": NameOID.POSTAL_CODE, "organizationIdentifier": NameOID.ORGANIZATION_IDENTIFIER,
    "jurisdictionC": NameOID.JURISDICTION_COUNTRY_NAME,
    "jurisdictionST": NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME,
    "jurisdictionL": NameOID.JURISDICTION_LOCALITY_NAME,
}
_RFC4514_NAMES: dict[str, ObjectIdentifier] = {
    "CN": NameOID.COMMON_NAME, "L": NameOID.LOCALITY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME, "STREET": NameOID.STREET_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT, "UID": NameOID.USER_ID,
}
#: Every name the parser reads; attribute types are case-insensitive (RFC 4512), so ``cn=``
#: and ``CN=`` both parse (mixed spellings other than OpenSSL's own do not).
_TYPES: dict[str, ObjectIdentifier] = {
    variant: oid
    for name, oid in {**_RFC4514_NAMES, **_OPENSSL_NAMES}.items()
    for variant in (name, name.lower(), name.upper())
}


class BadSubjectError(ValueError):
    """Text that is not an RFC 4514 distinguished name."""


def subject_key(text: str) -> SubjectKey:
    """The comparable form of a subject written as RFC 4514 text (``CN=x,O=y``, most specific
    first, as nginx and ``openssl x509 -nameopt RFC2253`` print it); ``BadSubjectError``."""
    if not text.strip() or len(text) > MAX_SUBJECT:
        raise BadSubjectError("empty or too long")
    try:
        name = x509.Name.from_rfc4514_string(text.strip(), _TYPES)
    except ValueError:
        raise BadSubjectError("not an RFC 4514 distinguished name") from None
    return tuple(frozenset((a.oid.dotted_string, _fold(a.value)) for a in rdn)
                 for rdn in name.rdns)


def canonical_subject(text: str) -> str:
    """``text`` rewritten as RFC 4514 with OpenSSL's attribute names (for the users file);
    ``BadSubjectError``."""
    subject_key(text)
    names: dict[ObjectIdentifier, str] = {}
    for short, oid in _OPENSSL_NAMES.items():
        names.setdefault(oid, short)
    return x509.Name.from_rfc4514_string(text.strip(), _TYPES).rfc4514_string(names)


def _fold(value: str | bytes) -> str:
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class ClientCertificate:
    """What a trusted proxy said about the client's certificate."""

    verify: str
    """``SUCCESS``, or the proxy's reason it did not verify one (``FAILED:...``)."""
    subject: str
    """The subject as RFC 4514 text (empty when the proxy sent none)."""


class TrustedProxies:
    """Which peers may vouch for a client certificate, and the two headers they use."""

    def __init__(self, settings: Settings) -> None:
        self.networks = parse_networks(settings.trusted_proxies)
        self.verify_header = settings.client_cert_verify_header
        self.subject_header = settings.client_cert_subject_header
        self._warned: dict[str, float] = {}
        self._lock = threading.Lock()

    def trusts(self, peer: str) -> bool:
        """Whether ``peer`` (an IP address as text) is in ``trusted_proxies``."""
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in self.networks)

    def certificate(self, peer: str, verify: str | None,
                    subject: str | None) -> ClientCertificate | None:
        """The certificate the request's headers describe, or None: no headers, ``NONE`` (the
        client sent no certificate), or headers from a peer that is not trusted (ignored, with
        a rate-limited WARNING)."""
        if verify is None and subject is None:
            return None
        if not self.trusts(peer):
            self._warn(peer)
            return None
        verify = (verify or "").strip()
        if verify == "NONE" or (not verify and not (subject or "").strip()):
            return None
        return ClientCertificate(verify[:128], (subject or "").strip()[:MAX_SUBJECT + 1])

    def _warn(self, peer: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._warned.get(peer)
            if last is not None and now - last < _WARN_EVERY_S:
                return
            if len(self._warned) >= _WARNED_PEERS:
                self._warned = {p: t for p, t in self._warned.items()
                                if now - t < _WARN_EVERY_S}
                if len(self._warned) >= _WARNED_PEERS:
                    return
            self._warned[peer] = now
        log.warning("client certificate headers (%s, %s) from %s ignored: the peer is not in "
                    "trusted_proxies (said once per peer per hour)", self.verify_header,
                    self.subject_header, peer[:64])
