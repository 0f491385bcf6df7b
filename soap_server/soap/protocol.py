"""SOAP 1.1 as Spyne does it, hardened and with a fast path for tensors.

- Requests are parsed with entities unresolved, no network and no DTD; any DOCTYPE is refused
  with ``Client.MalformedRequest`` (FACTS.md: stock Spyne with the lxml validator answers one
  with a plain 500 page).
- ``Predict`` requests are decoded straight from the lxml tree by ``codec`` into numpy arrays
  (on the fast path, big typed lists straight from the bytes by ``value_lists``, so the tree
  stays small), and ``Predict`` responses are written as bytes by ``codec``; Spyne still
  routes the call and publishes the typed WSDL that Java and C# clients use.
- Every fault is written by ``faults.fault_envelope`` with the ``ServiceFault`` detail.
- ``PredictFastPath`` answers plain ``Predict`` requests without Spyne's per-request machinery
  (method contexts, events, a second parse for ``xml:id`` references): the same decoding,
  dataplane call, response bytes and faults as through Spyne, at a fraction of the cost.
  A Header does not leave the fast path: ``envelope.check_envelope`` applies the
  ``mustUnderstand`` rule on both paths, WS-Addressing entries are ignored and ``wsse:Security``
  was checked by the HTTP front before the body got here (``security.Guard``).
  Anything else (other operations, other charsets, XML errors, multipart bodies)
  goes through Spyne, and so does everything once a Spyne event handler or an ``__in_header__``
  is declared, so hooks added later (authentication, say) are never bypassed.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence
from xml.sax.saxutils import escape

import numpy as np
from lxml import etree
from spyne.model.fault import Fault
from spyne.protocol.soap import Soap11

from ..dataplane import DataPlane, PredictResult, RunBlocking
from ..security import ANONYMOUS, Caller
from .codec import WireTensor, decode_tensors, encode_tensors
from .envelope import TRIM_FROM, check_envelope, give_back_memory, is_utf8, prescan
from .faults import EdgeError, MalformedRequestError, fault_envelope, to_fault
from .namespaces import TNS
from .value_lists import cut_value_lists

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


def decode_predict(body: etree._Element, lists: Sequence[np.ndarray] | None = None) -> list[Any]:
    """The ``Predict`` wrapper as the method's arguments, tensors decoded to numpy (``lists``:
    the value lists ``value_lists.cut_value_lists`` read from the request bytes)."""
    fields: dict[str, etree._Element] = {}
    for child in body:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        if not tag.startswith(_T):
            raise MalformedRequestError(f"element {tag!r} in Predict is not in namespace {TNS}")
        local = tag[len(_T):]
        if local not in ("model_name", "version", "inputs", "output_filter", "output_encoding",
                         "version_label"):
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
    inputs = decode_tensors(fields["inputs"], "Predict <inputs>", lists)
    label = _text(fields["version_label"]) if "version_label" in fields else None
    return [_text(fields["model_name"]), version, inputs, output_filter, encoding, label or None]


def wants_packed(inputs: list[WireTensor], encoding: str | None) -> bool:
    """Responses use the encoding of the request unless ``output_encoding`` says otherwise."""
    if encoding == "TENSOR_CONTENT":
        return True
    if encoding == "TYPED":
        return False
    return any(t.packed for t in inputs)


_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


class TfsoapSoap11(Soap11):
    """Spyne's ``Soap11`` with safe parsing, the tensor fast path and ``ServiceFault`` faults."""

    def from_element(self, ctx: Any, cls: Any, element: Any) -> Any:
        # an optional text field sent as xsi:nil by a toolkit that does so for null strings
        # (types.optional_text) is absent, not invalid; other fields stay strict
        if getattr(cls, "tfsoap_nil_is_absent", False) and element.get(_XSI_NIL):
            return None
        return super().from_element(ctx, cls, element)

    def create_in_document(self, ctx: Any, charset: str | None = None) -> None:
        rid = request_id(ctx)
        chunks = list(ctx.in_string or ())  # Spyne hands a generator over the body's blocks
        ctx.in_string = chunks
        if chunks and all(isinstance(c, bytes) for c in chunks):
            ctx.in_string = [b"".join(chunks)]
            try:
                prescan(ctx.in_string[0])
            except MalformedRequestError as exc:
                raise to_fault(exc, rid) from None
        try:
            super().create_in_document(ctx, charset)
        except Fault as exc:
            if str(exc.faultcode).startswith("Client"):
                raise to_fault(MalformedRequestError(_not_well_formed(str(exc.faultstring), rid)),
                               rid) from None
            raise
        except UnicodeDecodeError:
            raise to_fault(MalformedRequestError(
                f"the request body is not valid {str(charset)[:40]} text"), rid) from None
        except LookupError:  # a charset Python does not know
            raise to_fault(MalformedRequestError(
                f"the request charset {str(charset)[:40]!r} is not supported; "
                "send UTF-8"), rid) from None
        except Exception as exc:  # lxml and Spyne raise assorted errors on broken bodies
            log.info("request_id=%s unreadable body: %s: %s", rid, type(exc).__name__,
                     str(exc)[:300])
            raise to_fault(MalformedRequestError(
                "the request is not a well-formed SOAP envelope"), rid) from None
        root = ctx.in_document[0] if isinstance(ctx.in_document, tuple) else ctx.in_document
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None:
            raise to_fault(MalformedRequestError(
                "DOCTYPE and entity declarations are not allowed in requests"), rid)

    def decompose_incoming_envelope(self, ctx: Any, message: str = Soap11.REQUEST) -> None:
        root = ctx.in_document[0] if isinstance(ctx.in_document, tuple) else ctx.in_document
        try:
            check_envelope(root)
            super().decompose_incoming_envelope(ctx, message)
        except Fault:
            raise
        except Exception as exc:  # e.g. an empty <Body/>: Spyne raises AttributeError
            if not isinstance(exc, EdgeError):
                log.info("request_id=%s unusable envelope: %s: %s", request_id(ctx),
                         type(exc).__name__, str(exc)[:300])
                exc = MalformedRequestError("the SOAP envelope has no usable Body")
            raise to_fault(exc, request_id(ctx)) from None

    def deserialize(self, ctx: Any, message: str) -> None:
        try:
            if (message is self.REQUEST and ctx.descriptor is not None
                    and ctx.descriptor.name == PREDICT and ctx.in_body_doc is not None
                    and ctx.in_body_doc.tag == _T + PREDICT):
                self.event_manager.fire_event("before_deserialize", ctx)
                ctx.in_object = decode_predict(ctx.in_body_doc)
                _drop(ctx, _REQUEST_XML)  # the call waits for the model holding only arrays
                self.event_manager.fire_event("after_deserialize", ctx)
                return
            super().deserialize(ctx, message)
        except Exception as exc:  # every decoding error is a client fault with our detail
            raise to_fault(exc, request_id(ctx)) from None

    def serialize(self, ctx: Any, message: str) -> None:
        if ctx.out_error is not None:
            fault = to_fault(ctx.out_error, request_id(ctx))
            if not getattr(ctx.event, "tfsoap_called", False):  # else the dataplane logged it
                op = ctx.descriptor.name if ctx.descriptor is not None else "-"
                log.info("request_id=%s op=%s model=- version=- outcome=%s",
                         fault.request_id, op, fault.code)
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


# -- what a Spyne context holds ----------------------------------------------------------------
#: Spyne's ``MethodContext`` is a reference cycle (its ``ProtocolContext`` points back to it),
#: so it is freed only by the cyclic garbage collector, whose full runs are rare: everything it
#: references (the request bytes and parse tree, the decoded arrays, the response) outlived the
#: request by many requests, +400 MiB per 30 MB typed request. These are dropped explicitly.
_REQUEST_XML = ("in_string", "in_document", "in_body_doc", "in_header_doc")
_EVERYTHING = (*_REQUEST_XML, "in_object", "in_header", "out_object", "out_header",
               "out_document", "out_body_doc", "out_header_doc", "out_string", "udc")


def _drop(ctx: Any, names: Iterable[str]) -> None:
    for name in names:
        setattr(ctx, name, None)


def release_context(ctx: Any) -> None:
    """Drop what a finished Spyne context references (the request, its tree, the arrays and
    the response), and the request body in its WSGI environ: the context itself is a cycle
    that lives until a full garbage collection."""
    _drop(ctx, _EVERYTHING)
    env = getattr(ctx.transport, "req_env", None)
    if isinstance(env, dict) and "wsgi.input" in env:
        env["wsgi.input"] = io.BytesIO()
        if str(env.get("CONTENT_LENGTH") or "0").isdigit() and \
                int(env.get("CONTENT_LENGTH") or 0) >= TRIM_FROM:
            give_back_memory()


release_context.tfsoap_own = True  # type: ignore[attr-defined]


def release_on_close(spyne_wsgi: Any) -> None:
    """Have ``spyne_wsgi`` run ``release_context`` when each request's context closes (not a
    hook in the sense of ``spyne_hooks``: it leaves the fast path on)."""
    spyne_wsgi.event_manager.add_listener("wsgi_close", release_context)


# -- Predict without Spyne's pipeline ----------------------------------------------------------
_POSITION = re.compile(r"line (\d+), column (\d+)")


def _not_well_formed(detail: str, rid: str) -> str:
    """The client's words for a parse error; libxml2's own message goes to the log."""
    log.info("request_id=%s XML parse error: %s", rid, detail[:300])
    where = _POSITION.search(detail)
    at = f" at line {where.group(1)}, column {where.group(2)}" if where else ""
    if "XML_PARSE_HUGE" in detail or "too long" in detail or "too big" in detail:
        return (f"the request{at} holds a text or name over the XML parser's limits "
                "(texts of up to 10,000,000 characters, or any size in a UTF-8 Predict)")
    return f"the request is not well-formed XML{at}"


@dataclass
class PredictCall:
    """A decoded ``Predict`` request: no XML left, so it holds only its arrays while it waits."""

    model_name: str
    version: int | None
    inputs: list[WireTensor]
    output_filter: list[str] | None
    encoding: str
    version_label: str | None = None


def spyne_hooks(spyne_app: Any, extra: Iterable[Any] = ()) -> list[str]:
    """What in ``spyne_app`` (and ``extra`` objects with an ``event_manager``) would run code of
    its own for a request: event handlers and SOAP header types. The fast path stays off while
    this is not empty."""
    found = []
    owners = [spyne_app, spyne_app.in_protocol, spyne_app.out_protocol, *extra,
              *spyne_app.services]
    for owner in owners:
        for event, handlers in getattr(owner.event_manager, "handlers", {}).items():
            if any(not getattr(h, "tfsoap_own", False) for h in handlers):
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
        # huge_tree lifts libxml2's 10,000,000-character text limit (a big tensor_content) and
        # nothing else matters here: ``prescan`` refused any DTD, so there are no entities
        self.parser_kwargs = dict(parser_kwargs, huge_tree=True)
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
        not a plain ``Predict`` request (Spyne answers those, with the same checks)."""
        if not content_type or not _plain_xml(content_type) or not is_utf8(body):
            return None
        started = time.perf_counter()
        answer: PredictCall | bytes | None
        try:
            answer = self._decode(body, rid)
        except Exception as exc:  # the client fault Spyne's path would give
            fault = to_fault(exc, rid)
            log.info("request_id=%s op=- model=- version=- duration_ms=%.2f outcome=%s",
                     rid, (time.perf_counter() - started) * 1000, fault.code)
            answer = fault_envelope(fault.code, fault.message, fault.request_id)
        if len(body) >= TRIM_FROM:
            give_back_memory()  # the tree is gone: hand its memory back to the system
        return answer

    def _decode(self, body: bytes, rid: str) -> PredictCall | None:
        prescan(body)
        cut = cut_value_lists(body)
        if cut is not None:  # the big typed lists are read: the parser sees the rest
            try:
                root = etree.fromstring(cut.body, self._parser())
            except etree.XMLSyntaxError:
                root = None  # parsed whole below, for the parser's own position of the error
            if root is not None:
                operation = check_envelope(root)
                if operation.tag != _T + PREDICT:
                    return None
                return PredictCall(*decode_predict(operation, cut.values))
        try:
            root = etree.fromstring(body, self._parser())
        except etree.XMLSyntaxError as exc:
            raise MalformedRequestError(_not_well_formed(str(exc), rid)) from None
        operation = check_envelope(root)
        if operation.tag != _T + PREDICT:
            return None
        return PredictCall(*decode_predict(operation))

    def respond(self, call: PredictCall, rid: str,
                caller: Caller = ANONYMOUS) -> tuple[bool, bytes]:
        """Run ``call`` for ``caller``: (True, response) or (False, fault envelope)."""
        try:
            result = self.dataplane.predict(call.model_name, call.version,
                                            [(t.name, t.value) for t in call.inputs],
                                            call.output_filter, rid, caller,
                                            version_label=call.version_label)
        except Exception as exc:  # translated once, as PredictService.call_wrapper does
            return False, _fault_bytes(exc, rid)
        return self._answer(call, result, rid)

    async def respond_async(self, call: PredictCall, rid: str, caller: Caller,
                            run_blocking: RunBlocking) -> tuple[bool, bytes]:
        """``respond`` on an event loop (``DataPlane.predict_async``): the same answers."""
        try:
            result = await self.dataplane.predict_async(
                call.model_name, call.version, [(t.name, t.value) for t in call.inputs],
                call.output_filter, rid, caller, version_label=call.version_label,
                run_blocking=run_blocking)
        except Exception as exc:
            return False, _fault_bytes(exc, rid)
        return self._answer(call, result, rid)

    @staticmethod
    def _answer(call: PredictCall, result: PredictResult, rid: str) -> tuple[bool, bytes]:
        try:
            return True, FastPredictResponse(result, wants_packed(call.inputs,
                                                                  call.encoding)).to_xml()
        except Exception as exc:
            return False, _fault_bytes(exc, rid)


def _fault_bytes(exc: Exception, rid: str) -> bytes:
    fault = to_fault(exc, rid)
    return fault_envelope(fault.code, fault.message, fault.request_id)


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
