"""SOAP 1.1 as Spyne does it, hardened and with a fast path for tensors.

- Requests are parsed with entities unresolved, no network and no DTD; any DOCTYPE is refused
  with ``Client.MalformedRequest`` (FACTS.md: stock Spyne with the lxml validator answers one
  with a plain 500 page).
- ``Predict`` requests are decoded straight from the lxml tree by ``codec`` into numpy arrays,
  and ``Predict`` responses are written as bytes by ``codec``; Spyne still routes the call and
  publishes the typed WSDL that Java and C# clients use.
- Every fault is written by ``faults.fault_envelope`` with the ``ServiceFault`` detail.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from lxml import etree
from spyne.model.fault import Fault
from spyne.protocol.soap import Soap11

from .codec import WireTensor, decode_tensors, encode_tensors
from .dataplane import PredictResult
from .faults import MalformedRequestError, fault_envelope, to_fault
from .namespaces import TNS

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
        ).encode("utf-8")


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
