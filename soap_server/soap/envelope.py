"""What a request must be before it is decoded: checks on the bytes, then on the SOAP envelope.

On the bytes, before libxml2 sees them (``prescan``):

- At most ``MAX_ATTRIBUTES`` attributes and ``MAX_ATTRIBUTE_NAMES`` distinct attribute names.
  Attributes are not part of the contract (only namespace declarations and the odd ``xsi:nil``
  or ``mustUnderstand``), and every new name a document brings stays in libxml2's per-thread
  name dictionary for the life of the thread: 500,000 new names a request grew the server by
  about 50 MiB a request, never given back.
- No ``DOCTYPE`` or ``ENTITY`` declaration. Refused here, before parsing, so the fast path can
  parse with ``huge_tree`` (a ``tensor_content`` text over libxml2's 10,000,000 character limit,
  up to ``max_body_bytes``): without a DTD there are no entities to amplify. The fast path takes
  only UTF-8 documents, so the byte search cannot be dodged by another encoding.

On the parsed envelope (``check_envelope``, SOAP 1.1 section 4): the root is a SOAP 1.1
``Envelope`` (a SOAP 1.2 one gets a ``VersionMismatch`` fault), an optional ``Header`` comes
first, then exactly one ``Body`` and nothing after it; the Body holds exactly one element. A
Header entry with ``mustUnderstand="1"`` must be one this server understands (the WS-Addressing
headers that zeep, JAX-WS and WCF add because the WSDL carries ``wsaw:Action``, and
``wsse:Security``, which ``security.Guard`` checks before the body is decoded), else a
``MustUnderstand`` fault. Understood headers are read and ignored: they do not change where the
answer goes (the reply is always on the HTTP response), so a ``Predict`` with them still takes
the fast path.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import re
from typing import Any, Iterator

from lxml import etree

from ..outcomes import MalformedRequestError, MustUnderstandError, VersionMismatchError
from .namespaces import SOAP_ENV
from .wssecurity import SECURITY

MAX_ATTRIBUTES = 1024
MAX_ATTRIBUTE_NAMES = 64
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
_ENVELOPE = "{%s}Envelope" % SOAP_ENV
_BODY = "{%s}Body" % SOAP_ENV
_HEADER = "{%s}Header" % SOAP_ENV
_MUST_UNDERSTAND = "{%s}mustUnderstand" % SOAP_ENV
_ACTOR = "{%s}actor" % SOAP_ENV
_NEXT = "http://schemas.xmlsoap.org/soap/actor/next"
#: WS-Addressing 1.0 and the 2004/08 submission, with the entries a request may carry.
_WSA = ("http://www.w3.org/2005/08/addressing", "http://schemas.xmlsoap.org/ws/2004/08/addressing")
_WSA_ENTRIES = ("Action", "MessageID", "To", "ReplyTo", "From", "FaultTo", "RelatesTo")
#: ``wsse:Security`` too: the HTTP front checks its UsernameToken when a users file is set (with
#: none, every caller is accepted anyway, so a token changes nothing).
UNDERSTOOD_HEADERS = frozenset("{%s}%s" % (ns, e) for ns in _WSA for e in _WSA_ENTRIES) | {SECURITY}

_ATTRIBUTE = re.compile(rb'=[ \t\r\n]*["\']')
#: the attribute's name, read backwards from its ``=`` (a reversed window, so that the match
#: is anchored: searching forwards for a name that ends at ``=`` tried every start in the window)
_NAME_REVERSED = re.compile(rb'[ \t\r\n]*([^\s<>"\'=/]{1,200})')
_DECLARATION = re.compile(rb"<!(?:DOCTYPE|ENTITY)")
_XML_DECL_ENCODING = re.compile(rb'^(?:\xef\xbb\xbf)?<\?xml[^>]*?encoding\s*=\s*["\']([^"\']*)')


def prescan(body: bytes) -> None:
    """Refuse a body with too many attributes or attribute names, or a DTD, before parsing.

    Counts every ``name="`` outside tags too (in text a ``="`` is rare in this contract:
    names, numbers and base64), which only makes the bound stricter."""
    names: set[bytes] = set()
    count = 0
    for start in _equals_signs(body):
        if _ATTRIBUTE.match(body, start) is None:
            continue
        name = _NAME_REVERSED.match(body[max(0, start - 256):start][::-1])
        count += 1
        names.add(name.group(1)[::-1] if name else b"")
        if count > MAX_ATTRIBUTES or len(names) > MAX_ATTRIBUTE_NAMES:
            raise MalformedRequestError(
                f"the request carries more than {MAX_ATTRIBUTES} XML attributes or "
                f"{MAX_ATTRIBUTE_NAMES} distinct attribute names; this contract uses none "
                "but namespace declarations")
    if b"!" in body and _DECLARATION.search(body):  # memchr first: "<!" is rare
        raise MalformedRequestError("DOCTYPE and entity declarations are not allowed in requests")


def _equals_signs(body: bytes) -> Iterator[int]:
    """Where ``body`` has an ``=``. A request of this contract has a few (namespace
    declarations, base64 padding): found by ``bytes.find`` (memchr), which is ten times faster
    than the regular expression scanning every byte; a body with more than ``MAX_ATTRIBUTES``
    of them is scanned by the expression, in C, rather than by a Python loop per sign."""
    if body.count(b"=") > MAX_ATTRIBUTES:
        yield from (m.start() for m in _ATTRIBUTE.finditer(body))
        return
    at = body.find(b"=")
    while at >= 0:
        yield at
        at = body.find(b"=", at + 1)


def is_utf8(body: bytes) -> bool:
    """Whether ``body`` is a UTF-8 document by its XML declaration (none means UTF-8)."""
    if body[:2] in (b"\xff\xfe", b"\xfe\xff") or body[:1] == b"\x00" or body[1:2] == b"\x00":
        return False
    m = _XML_DECL_ENCODING.match(body[:256])
    return m is None or m.group(1).strip().lower() in (b"utf-8", b"utf8")


def check_envelope(root: etree._Element) -> etree._Element:
    """The one operation element of a well-formed SOAP 1.1 request; raise the fault's error."""
    tag = root.tag
    if not isinstance(tag, str) or tag != _ENVELOPE:
        if isinstance(tag, str) and tag.endswith("}Envelope"):
            raise VersionMismatchError(
                "this service speaks SOAP 1.1 (envelope namespace " + SOAP_ENV + ")"
                + ("; the request is a SOAP 1.2 envelope" if tag == "{%s}Envelope" % SOAP12_ENV
                   else ""))
        raise MalformedRequestError("the request is not a SOAP 1.1 Envelope")
    header = body = None
    for child in root:
        ctag = child.tag
        if not isinstance(ctag, str):
            continue  # comments (removed by the parser anyway)
        if body is not None:
            raise MalformedRequestError("the SOAP Envelope has elements after its Body")
        if ctag == _HEADER and header is None:
            header = child
        elif ctag == _BODY:
            body = child
        elif ctag == _HEADER:
            raise MalformedRequestError("the SOAP Envelope has two Headers")
        else:
            raise MalformedRequestError(
                "the SOAP Envelope may hold only a Header and then a Body")
    if body is None:
        raise MalformedRequestError("the SOAP Envelope has no Body")
    if header is not None:
        _check_header(header)
    operations = [c for c in body if isinstance(c.tag, str)]
    if len(operations) != 1:
        raise MalformedRequestError(
            f"the SOAP Body must hold exactly one operation element, found {len(operations)}")
    return operations[0]


def _check_header(header: etree._Element) -> None:
    for entry in header:
        if not isinstance(entry.tag, str) or entry.tag in UNDERSTOOD_HEADERS:
            continue
        if entry.get(_ACTOR, _NEXT) != _NEXT:
            continue  # meant for another node
        if entry.get(_MUST_UNDERSTAND, "0").strip() in ("1", "true"):
            qname = etree.QName(entry)
            raise MustUnderstandError(
                f"the SOAP Header entry {qname.localname!r} in namespace "
                f"{qname.namespace or '(none)'!r} is marked mustUnderstand and this service "
                "does not understand it")


_LIBC: Any = None
try:  # glibc keeps freed memory of big parses in its arenas unless asked to give it back
    _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
except (OSError, AttributeError):
    _LIBC = None

#: Requests from this size on give their freed memory back to the system when they are done.
TRIM_FROM = 4 * 1024 * 1024


def collect_after_big_request() -> None:
    """After a big request through Spyne's pipeline: collect reference cycles, then give the
    memory back. Spyne's method context is a cycle, so what it held (the request's parse tree:
    several bytes per request byte) stays until a full collection, which Spyne's own periodic
    ``gc.collect()`` did and we turned off (it stalls every request for ~0.2 s). Spyne's path is
    the rare one (non-UTF-8 bodies, other operations), so a pause there is paid only by
    requests of ``TRIM_FROM`` bytes or more, which take far longer than it."""
    gc.collect()
    give_back_memory()


def give_back_memory() -> None:
    """Return freed heap memory to the system (glibc ``malloc_trim``; a no-op elsewhere).

    A 30 MB typed request's parse tree is millions of small blocks spread over glibc's
    per-thread arenas: freed, they stay in the process (1.5 GiB after 8 at once) until trimmed."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
