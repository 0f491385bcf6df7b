"""WS-Security in the SOAP header: the ``wsse:UsernameToken`` (OASIS UsernameToken Profile
1.0/1.1) read from the request bytes, for ``security.Guard`` to check.

The header is read by a streaming lxml parse with the same safety as every request parse (no
DTD, no entities, no network) that stops where the ``Body`` starts: the tensors are not parsed
twice. Only a ``wsse:Security`` that is a direct child of ``Envelope/Header`` counts; it may
carry ``mustUnderstand="1"``, which this server honours by checking it (``envelope``'s
``UNDERSTOOD_HEADERS`` names it for the SOAP header rules).
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from lxml import etree

from ..security import UsernameToken
from .namespaces import SOAP_ENV

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_TOKEN_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_TEXT = _TOKEN_PROFILE + "#PasswordText"
PASSWORD_DIGEST = _TOKEN_PROFILE + "#PasswordDigest"
BASE64_BINARY = ("http://docs.oasis-open.org/wss/2004/01/"
                 "oasis-200401-wss-soap-message-security-1.0#Base64Binary")
SECURITY = "{%s}Security" % WSSE
_ENVELOPE = "{%s}Envelope" % SOAP_ENV
_HEADER = "{%s}Header" % SOAP_ENV
_BODY = "{%s}Body" % SOAP_ENV
_MAX_TEXT = 1024


def read_username_token(body: bytes, parser_kwargs: dict[str, Any] | None = None
                        ) -> UsernameToken | None:
    """The UsernameToken in ``body``'s SOAP header; None if there is none (or the body is not
    a SOAP envelope: the SOAP layer faults that)."""
    kwargs = {"resolve_entities": False, "no_network": True, "load_dtd": False,
              "huge_tree": False}
    if parser_kwargs:
        kwargs.update({k: v for k, v in parser_kwargs.items() if k in ("huge_tree",)})
    security: list[etree._Element] = []
    try:
        for event, el in etree.iterparse(io.BytesIO(body), events=("start", "end"), **kwargs):
            if event == "start":
                if el.tag == _BODY:
                    break
                continue
            if el.tag == SECURITY:
                parent = el.getparent()
                if parent is not None and parent.tag == _HEADER and \
                        parent.getparent() is not None and parent.getparent().tag == _ENVELOPE:
                    security.append(el)
            elif el.tag == _HEADER:
                break
    except etree.XMLSyntaxError:
        return None
    if not security:
        return None
    if len(security) > 1:
        return UsernameToken(username="-", problem="more than one wsse:Security header")
    return _token(security[0])


def _token(security: etree._Element) -> UsernameToken | None:
    tokens = security.findall("{%s}UsernameToken" % WSSE)
    stamp = security.find("{%s}Timestamp" % WSU)
    ts_created = _child_text(stamp, WSU, "Created") if stamp is not None else None
    ts_expires = _child_text(stamp, WSU, "Expires") if stamp is not None else None
    if not tokens:
        return None
    if len(tokens) > 1:
        return UsernameToken(username="-", problem="more than one UsernameToken")
    token = tokens[0]
    username = (_child_text(token, WSSE, "Username") or "")[:_MAX_TEXT]
    password_el = token.find("{%s}Password" % WSSE)
    password = (password_el.text or "") if password_el is not None else ""
    kind = password_el.get("Type", PASSWORD_TEXT) if password_el is not None else PASSWORD_TEXT
    common: dict[str, Any] = {"username": username, "timestamp_created": ts_created,
                              "timestamp_expires": ts_expires,
                              "created": _child_text(token, WSU, "Created")}
    if kind not in (PASSWORD_TEXT, PASSWORD_DIGEST):
        return UsernameToken(**common, problem="unknown Password Type")
    if len(password) > _MAX_TEXT:
        return UsernameToken(**common, problem="Password too long")
    nonce_el = token.find("{%s}Nonce" % WSSE)
    nonce = None
    if nonce_el is not None:
        if nonce_el.get("EncodingType", BASE64_BINARY) != BASE64_BINARY:
            return UsernameToken(**common, problem="Nonce EncodingType is not Base64Binary")
        try:
            nonce = base64.b64decode((nonce_el.text or "").strip(), validate=True)
        except (binascii.Error, ValueError):
            return UsernameToken(**common, problem="Nonce is not base64")
        if not 8 <= len(nonce) <= 128:
            return UsernameToken(**common, problem="Nonce is not 8 to 128 bytes")
    return UsernameToken(**common, password=password, digest=kind == PASSWORD_DIGEST,
                         nonce=nonce)


def _child_text(el: etree._Element, ns: str, local: str) -> str | None:
    child = el.find("{%s}%s" % (ns, local))
    return None if child is None else (child.text or "").strip()[:_MAX_TEXT]
