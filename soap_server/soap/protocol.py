"""SOAP 1.1 as Spyne does it, hardened and with a fast path for tensors.

- Requests are parsed with entities unresolved, no network and no DTD; any DOCTYPE is refused
  with ``Client.MalformedRequest`` (FACTS.md: stock Spyne with the lxml validator answers one
  with a plain 500 page).
- ``Predict`` requests are decoded straight from the lxml tree by ``codec`` into numpy arrays,
  and ``Predict`` responses are written as bytes by ``codec``; Spyne still routes the call and
  publishes the typed WSDL that Java and C# clients use.
- Every fault is written by ``faults.fault_envelope`` with the ``ServiceFault`` detail.
- ``PredictFastPath`` answers plain ``Predict`` requests without Spyne's per-request machinery
  (method contexts, events, a second parse for ``xml:id`` references): the same decoding,
  dataplane call, response bytes and faults as through Spyne, at a fraction of the cost.
  Anything else (other operations, SOAP headers other than ``wsse:Security`` and
  WS-Addressing, which ``wssecurity`` handles, DOCTYPEs, XML errors, multipart bodies)
  goes through Spyne, and so does everything once a Spyne event handler or an ``__in_header__``
  is declared, so hooks added later (authentication, say) are never bypassed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from xml.sax.saxutils import escape

from lxml import etree
from spyne.model.fault import Fault
from spyne.protocol.soap import Soap11

from ..dataplane import DataPlane, PredictResult
from ..security import ANONYMOUS, Caller
from .codec import WireTensor, decode_tensors, encode_tensors
from .faults import MalformedRequestError, fault_envelope, to_fault
from .namespaces import SOAP_ENV, TNS
from .wssecurity import header_is_fast

log = logging.getLogger(__name__)
_T = "{%s}" % TNS
PREDICT = "Predict"
REQUEST_ID_KEY = "tfsoap.request_id"
_ENCODINGS = ("AUTO", "TYPED", "TENSOR_CONTENT")


class FastPredictResponse:
    """What the ``Predict`` method returns: written to bytes by this protocol, not by Spyne."""

    __slots__ = ("result", "packed")

    def __init__(self, result: PredictResult, packed: bool) -> None:
        self.result = result
        self.packed = packed

    def to_xml(self) -> bytes:
        r = self.result
        return (
            "<?xml version='1.0' encoding='UTF-8'?>"
            '<soap11env:Envelope xmlns:soap11env="http://schemas.xmlsoap.org/soap/envelope/">'
            f'<soap11env:Body><PredictResponse xmlns="{TNS}"><PredictResult>'
            f"<model_name>{escape(r.model_name)}</model_name><version>{r.version}</version>"
            f"<outputs>{encode_tensors(r.outputs, self.packed)}</outputs>"
            "</PredictResult></PredictResponse></soap11env:Body></soap11env:Envelope>"
        ).encode()


def request_id(ctx: Any) -> str:
    env = getattr(ctx.transport, "req_env", None) or {}
    return str(env.get(REQUEST_ID_KEY, "-"))


def _text(el: etree._Element) -> str:
    return (el.text or "").strip()


def decode_predict(body: etree._Element) -> list[Any]:
    """The ``Predict`` wrapper as the method's arguments, tensors decoded to numpy."""
    fields: dict[str, etree._Element] = {}
    for child in body:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        if not tag.startswith(_T):
            raise MalformedRequestError(f"element {tag!r} in Predict is not in namespace {TNS}")
        local = tag[len(_T):]
        if local not in ("model_name", "version", "inputs", "output_filter", "output_encoding"):
            raise MalformedRequestError(f"unknown element <{local}> in Predict")
        if local in fields:
            raise MalformedRequestError(f"element <{local}> repeated in Predict")
        fields[local] = child
    for name in ("model_name", "inputs"):
        if name not in fields:
            raise MalformedRequestError(f"Predict lacks the required element <{name}>")
    version = None
    if "version" in fields:
        try:
            version = int(_text(fields["version"]))
        except ValueError:
            raise MalformedRequestError("Predict <version> is not an integer") from None
    output_filter = None
    if "output_filter" in fields:
        output_filter = [_text(c) for c in fields["output_filter"] if isinstance(c.tag, str)]
    encoding = _text(fields["output_encoding"]) if "output_encoding" in fields else "AUTO"
    if encoding not in _ENCODINGS:
        raise MalformedRequestError(f"Predict <output_encoding> must be one of {_ENCODINGS}")
    inputs = decode_tensors(fields["inputs"], "Predict <inputs>")
    return [_text(fields["model_name"]), version, inputs, output_filter, encoding]


def wants_packed(inputs: list[WireTensor], encoding: str | None) -> bool:
    """Responses use the encoding of the request unless ``output_encoding`` says otherwise."""
    if encoding == "TENSOR_CONTENT":
        return True
    if encoding == "TYPED":
        return False
    return any(t.packed for t in inputs)


class TfsoapSoap11(Soap11):
    """Spyne's ``Soap11`` with safe parsing, the tensor fast path and ``ServiceFault`` faults."""

    def create_in_document(self, ctx: Any, charset: str | None = None) -> None:
        try:
            super().create_in_document(ctx, charset)
        except Fault as exc:
            if str(exc.faultcode).startswith("Client"):
                raise to_fault(MalformedRequestError(
                    f"the request is not well-formed XML: {exc.faultstring}"),
                    request_id(ctx)) from None
            raise
        except Exception as exc:  # lxml and Spyne raise assorted errors on broken bodies
            raise to_fault(MalformedRequestError(
                f"the request is not a well-formed SOAP envelope ({type(exc).__name__})"),
                request_id(ctx)) from None
        root = ctx.in_document[0] if isinstance(ctx.in_document, tuple) else ctx.in_document
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None:
            raise to_fault(MalformedRequestError(
                "DOCTYPE and entity declarations are not allowed in requests"), request_id(ctx))

    def decompose_incoming_envelope(self, ctx: Any, message: str = Soap11.REQUEST) -> None:
        try:
            super().decompose_incoming_envelope(ctx, message)
        except Fault:
            raise
        except Exception as exc:  # e.g. an empty <Body/>: Spyne raises AttributeError
            raise to_fault(MalformedRequestError(
                f"the SOAP envelope has no usable Body ({type(exc).__name__})"),
                request_id(ctx)) from None

    def deserialize(self, ctx: Any, message: str) -> None:
        try:
            if (message is self.REQUEST and ctx.descriptor is not None
                    and ctx.descriptor.name == PREDICT and ctx.in_body_doc is not None
                    and ctx.in_body_doc.tag == _T + PREDICT):
                self.event_manager.fire_event("before_deserialize", ctx)
                ctx.in_object = decode_predict(ctx.in_body_doc)
                self.event_manager.fire_event("after_deserialize", ctx)
                return
            super().deserialize(ctx, message)
        except Exception as exc:  # every decoding error is a client fault with our detail
            raise to_fault(exc, request_id(ctx)) from None

    def serialize(self, ctx: Any, message: str) -> None:
        if ctx.out_error is not None:
            fault = to_fault(ctx.out_error, request_id(ctx))
            ctx.out_error = fault
            ctx.udc = fault_envelope(fault.code, fault.message, fault.request_id)
            ctx.out_document = etree.Element("fault")
            if ctx.transport is not None:
                ctx.transport.resp_code = "500 Internal Server Error"
            return
        out = ctx.out_object
        fast = out[0] if isinstance(out, (list, tuple)) and out else out
        if isinstance(fast, FastPredictResponse):
            ctx.udc = fast.to_xml()
            ctx.out_document = etree.Element("predict")
            return
        super().serialize(ctx, message)

    def create_out_string(self, ctx: Any, charset: str | None = None) -> None:
        if isinstance(ctx.udc, bytes):
            ctx.out_string = [ctx.udc]
            return
        super().create_out_string(ctx, charset)


# -- Predict without Spyne's pipeline ----------------------------------------------------------
_ENVELOPE = "{%s}Envelope" % SOAP_ENV
_BODY = "{%s}Body" % SOAP_ENV
_HEADER = "{%s}Header" % SOAP_ENV


@dataclass
class PredictCall:
    """A decoded ``Predict`` request: no XML left, so it holds only its arrays while it waits."""

    model_name: str
    version: int | None
    inputs: list[WireTensor]
    output_filter: list[str] | None
    encoding: str


def spyne_hooks(spyne_app: Any, extra: Iterable[Any] = ()) -> list[str]:
    """What in ``spyne_app`` (and ``extra`` objects with an ``event_manager``) would run code of
    its own for a request: event handlers and SOAP header types. The fast path stays off while
    this is not empty."""
    found = []
    owners = [spyne_app, spyne_app.in_protocol, spyne_app.out_protocol, *extra,
              *spyne_app.services]
    for owner in owners:
        for event, handlers in getattr(owner.event_manager, "handlers", {}).items():
            if handlers:
                found.append(f"{type(owner).__name__} event {event!r}")
    for service in spyne_app.services:
        if getattr(service, "__in_header__", None) is not None:
            found.append(f"{service.__name__}.__in_header__")
    return found


class PredictFastPath:
    """``Predict`` from request bytes to response bytes, as ``TfsoapSoap11`` and
    ``PredictService.Predict`` would answer it through Spyne.

    ``decode`` returns the decoded call, the fault envelope for a request that is a ``Predict``
    but a malformed one, or None for anything Spyne must see; ``respond`` runs the call.
    """

    def __init__(self, dataplane: DataPlane, parser_kwargs: dict[str, Any],
                 enabled: Callable[[], bool] = lambda: True) -> None:
        self.dataplane = dataplane
        self.parser_kwargs = dict(parser_kwargs)
        self.enabled = enabled
        self._local = threading.local()

    def _parser(self) -> etree.XMLParser:
        parser = getattr(self._local, "parser", None)
        if parser is None:  # a parser serves one thread at a time
            parser = self._local.parser = etree.XMLParser(**self.parser_kwargs)
        return parser

    def decode(self, body: bytes, content_type: str | None,
               rid: str) -> PredictCall | bytes | None:
        """The ``Predict`` call in ``body``; fault bytes if it cannot be decoded; None if it is
        not a plain ``Predict`` request (Spyne answers those, with the same parser)."""
        if not content_type or not _plain_xml(content_type):
            return None
        try:
            root = etree.fromstring(body, self._parser())
        except etree.XMLSyntaxError:
            return None
        docinfo = root.getroottree().docinfo
        if root.tag != _ENVELOPE or docinfo.doctype or docinfo.internalDTD is not None:
            return None
        soap_body = None
        for child in root:
            if child.tag == _HEADER:
                if not header_is_fast(child):
                    return None
                continue
            if child.tag == _BODY:
                soap_body = child
                break
        if soap_body is None or not len(soap_body) or soap_body[0].tag != _T + PREDICT:
            return None
        started = time.perf_counter()
        try:
            return PredictCall(*decode_predict(soap_body[0]))
        except Exception as exc:  # the client fault Spyne's path would give
            fault = to_fault(exc, rid)
            log.info("request_id=%s op=Predict model=- version=- duration_ms=%.2f outcome=%s",
                     rid, (time.perf_counter() - started) * 1000, fault.code)
            return fault_envelope(fault.code, fault.message, fault.request_id)

    def respond(self, call: PredictCall, rid: str,
                caller: Caller = ANONYMOUS) -> tuple[bool, bytes]:
        """Run ``call`` for ``caller``: (True, response) or (False, fault envelope)."""
        try:
            result = self.dataplane.predict(call.model_name, call.version,
                                            [(t.name, t.value) for t in call.inputs],
                                            call.output_filter, rid, caller)
            return True, FastPredictResponse(result, wants_packed(call.inputs,
                                                                  call.encoding)).to_xml()
        except Exception as exc:  # translated once, as PredictService.call_wrapper does
            fault = to_fault(exc, rid)
            return False, fault_envelope(fault.code, fault.message, fault.request_id)


def _plain_xml(content_type: str) -> bool:
    """``text/xml`` (or another XML type) in UTF-8 or without a charset: no multipart bodies
    (SwA, MTOM) and no charset conversions, which Spyne handles."""
    kind, _, params = content_type.partition(";")
    kind = kind.strip().lower()
    if kind.startswith("multipart/") or "xml" not in kind:
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and \
                value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True
