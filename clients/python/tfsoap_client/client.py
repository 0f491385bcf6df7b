"""``PredictClient``: call a tfsoap ``PredictService`` from Python with numpy arrays.

Built on zeep: the WSDL is read from the server (``URL?wsdl``) or from a file, and every
collaborator zeep takes (transport, settings, plugins) can be passed in. SOAP faults become the
typed exceptions of ``tfsoap_client.errors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import requests
import requests.auth
import zeep
import zeep.exceptions
from lxml import etree
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from .errors import ClientError, InvalidInputError, TransportError, fault_class
from .tensors import ENCODINGS, cast_for_signature, from_wire, inputs_to_wire

TNS = "urn:tfsoap:predict:v1"
SERVICE = "{%s}PredictService" % TNS
PORT = "PredictServiceSoap"
#: How a client with a user name and password authenticates.
AUTH_MODES = ("basic", "wsse", "wsse-digest")


@dataclass(frozen=True)
class TensorInfo:
    """An input or output of a model: name (alias), dtype and shape (-1: unknown; None: rank
    unknown)."""

    name: str
    dtype: str
    shape: tuple[int, ...] | None


@dataclass(frozen=True)
class ModelMetadata:
    """What a model takes and gives, and which versions the server has."""

    model_name: str
    version: int
    versions: tuple[int, ...]
    state: str
    description: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    labels: tuple[str, ...]
    batching: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ModelSummary:
    name: str
    latest_version: int
    versions: tuple[int, ...]
    state: str
    description: str


@dataclass(frozen=True)
class PredictResult:
    """Outputs by name and the model version that computed them."""

    model_name: str
    version: int
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerStatus:
    server_version: str
    uptime_seconds: float
    ready: bool
    models: tuple[Mapping[str, Any], ...]


def _items(holder: Any, item: str) -> list[Any]:
    if holder is None:
        return []
    if isinstance(holder, list):  # zeep unwraps a wrapper whose only child is the array
        return holder
    return list(holder[item] or [])


def _infos(holder: Any) -> tuple[TensorInfo, ...]:
    return tuple(TensorInfo(t["name"], t["dtype"],
                            tuple(_items(t["shape"], "long")) if t["rank_known"] else None)
                 for t in _items(holder, "TensorInfo"))


class PredictClient:
    """A client of one tfsoap server.

    ``url`` is the server's endpoint (``http://host:8080/``) or its WSDL address
    (``http://host:8080/?wsdl``). The WSDL comes from ``url?wsdl`` unless ``wsdl`` names a file
    or URL (for example the committed ``wsdl/PredictService.wsdl``). ``encoding`` is how inputs
    travel: ``"tensor_content"`` (raw bytes, fast) or ``"typed"`` (``float_val`` and friends).
    With ``cast_inputs`` (the default), inputs are cast to the dtypes the model declares when
    the cast is safe (float64 arrays for a ``DT_FLOAT`` input, say); the model's metadata is
    asked once per model and version for that.

    With ``username`` and ``password`` every call authenticates, as ``auth`` says: ``"basic"``
    (HTTP Basic), ``"wsse"`` (WS-Security UsernameToken, PasswordText) or ``"wsse-digest"``
    (PasswordDigest with a nonce and a timestamp); zeep's own ``UsernameToken`` writes the
    header. ``verify`` (a CA bundle path, or False) and ``cert`` (client certificate and key
    paths, for mutual TLS) go to the requests session.
    """

    def __init__(self, url: str, *, wsdl: str | None = None, timeout: float = 30.0,
                 encoding: str = "tensor_content", transport: Transport | None = None,
                 settings: zeep.Settings | None = None, plugins: Sequence[Any] = (),
                 cast_inputs: bool = True,
                 username: str | None = None, password: str | None = None,
                 auth: str = "basic", verify: str | bool | None = None,
                 cert: str | tuple[str, str] | None = None) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
        if auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of {AUTH_MODES}, got {auth!r}")
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        url, wsdl_url = split_wsdl_url(url)
        wsdl = wsdl or wsdl_url
        self.url = url
        self.encoding = encoding
        self.cast_inputs = cast_inputs
        self._input_dtypes: dict[tuple[str, int | None], dict[str, str]] = {}
        wsse = None
        if transport is None:
            session = _Session(verify)
            if cert is not None:
                session.cert = cert
            if username is not None and auth == "basic":
                session.auth = requests.auth.HTTPBasicAuth(username, password or "")
            transport = Transport(session=session, timeout=timeout, operation_timeout=timeout)
        if username is not None and auth != "basic":
            wsse = UsernameToken(username, password, use_digest=auth == "wsse-digest",
                                 zulu_timestamp=True)
        settings = settings or zeep.Settings(strict=True, xml_huge_tree=True)
        try:
            self._zeep = zeep.Client(wsdl, transport=transport, settings=settings,
                                     plugins=list(plugins), wsse=wsse)
        except (requests.RequestException, OSError) as exc:
            raise TransportError(f"cannot read the WSDL from {url}: {exc}") from exc
        except (zeep.exceptions.Error, etree.XMLSyntaxError) as exc:
            raise TransportError(f"{url} did not answer a usable WSDL: {exc}") from exc
        self.service = self._zeep.create_service(
            "{%s}PredictServiceSoapBinding" % TNS, url)

    @property
    def zeep_client(self) -> zeep.Client:
        """The underlying zeep client, for anything this class does not wrap."""
        return self._zeep

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.service, operation)(**kwargs)
        except zeep.exceptions.Fault as fault:
            raise _typed_fault(fault) from None
        except requests.Timeout as exc:
            raise TransportError(f"{operation} timed out: {exc}") from exc
        except (requests.RequestException, OSError) as exc:
            raise TransportError(f"{operation} failed to reach {self.url}: {exc}") from exc
        except zeep.exceptions.TransportError as exc:
            raise TransportError(f"{operation}: HTTP {exc.status_code} from {self.url}") from exc
        except (zeep.exceptions.Error, etree.XMLSyntaxError) as exc:
            raise TransportError(f"{operation}: not a valid SOAP answer: {exc}") from exc

    def predict_result(self, model: str, inputs: Mapping[str, Any], *,
                       version: int | None = None, outputs: Sequence[str] | None = None,
                       encoding: str | None = None,
                       output_encoding: str | None = None,
                       version_label: str | None = None) -> PredictResult:
        """Like ``predict`` but also says which model version answered."""
        enc = encoding or self.encoding
        if self.cast_inputs:
            inputs = self._cast(model, version, inputs, version_label)
        kwargs: dict[str, Any] = {"model_name": model,
                                  "inputs": {"Tensor": inputs_to_wire(inputs, enc)}}
        if version is not None:
            kwargs["version"] = int(version)
        if outputs:
            kwargs["output_filter"] = {"string": list(outputs)}
        if output_encoding:
            kwargs["output_encoding"] = output_encoding
        if version_label:
            kwargs["version_label"] = version_label
        res = self._call("Predict", **kwargs)
        tensors = dict(from_wire(t) for t in _items(res["outputs"], "Tensor"))
        return PredictResult(res["model_name"], int(res["version"]), tensors)

    def _cast(self, model: str, version: int | None, inputs: Mapping[str, Any],
              version_label: str | None = None) -> Mapping[str, Any]:
        """``inputs`` cast to the dtypes the model's signature declares, where that is safe
        (see ``tensors.cast_for_signature``); the signature is asked once per model and
        version (a label's is asked each time: its version may move). An input the signature
        does not name is left for the server to refuse."""
        dtypes = self._input_dtypes.get((model, version)) if not version_label else None
        if dtypes is None:
            meta = self.metadata(model, version, version_label=version_label)
            dtypes = {t.name: t.dtype for t in meta.inputs}
            if not version_label:
                self._input_dtypes[(model, version)] = dtypes
        cast: dict[str, Any] = {}
        for name, value in inputs.items():
            if name not in dtypes:
                cast[name] = value
                continue
            try:
                cast[name] = cast_for_signature(name, value, dtypes[name])
            except ValueError as exc:
                raise InvalidInputError(f"{exc} (checked by the client before sending)",
                                        "Client.InvalidInput") from None
        return cast

    def predict(self, model: str, inputs: Mapping[str, Any], *, version: int | None = None,
                outputs: Sequence[str] | None = None,
                encoding: str | None = None,
                version_label: str | None = None) -> dict[str, np.ndarray]:
        """Run ``model`` on ``inputs`` (name -> array); returns outputs by name. The latest
        version answers unless ``version`` or ``version_label`` (``"stable"``) says."""
        return self.predict_result(model, inputs, version=version, outputs=outputs,
                                   encoding=encoding, version_label=version_label).outputs

    def metadata(self, model: str, version: int | None = None, *,
                 version_label: str | None = None) -> ModelMetadata:
        """The inputs, outputs, labels and versions of ``model`` (of ``version``, or of the
        version ``version_label`` names)."""
        kwargs: dict[str, Any] = {"model_name": model}
        if version is not None:
            kwargs["version"] = int(version)
        if version_label:
            kwargs["version_label"] = version_label
        m = self._call("GetModelMetadata", **kwargs)
        batching = None
        if m["batching"] is not None:
            b = m["batching"]
            batching = {k: b[k] for k in ("enabled", "max_batch_size", "batch_timeout_ms",
                                          "max_enqueued_batches")}
        return ModelMetadata(m["model_name"], int(m["version"]),
                             tuple(_items(m["versions"], "long")), m["state"],
                             m["description"] or "", _infos(m["inputs"]), _infos(m["outputs"]),
                             tuple(_items(m["labels"], "string")), batching)

    def list_models(self) -> list[ModelSummary]:
        """Every model the server serves."""
        res = self._call("ListModels")
        return [ModelSummary(m["name"], int(m["latest_version"]),
                             tuple(_items(m["versions"], "long")), m["state"],
                             m["description"] or "")
                for m in _items(res, "ModelSummary")]

    def status(self) -> ServerStatus:
        """Server version, uptime, readiness and each model version's state."""
        s = self._call("GetServerStatus")
        # content_hash, loaded_at, load_seconds, memory_bytes and weights_bytes came with 0.2:
        # absent from older servers
        models = tuple({k: getattr(m, k, None) for k in (
            "model_name", "version", "state", "error", "requests_completed",
            "requests_rejected", "content_hash", "loaded_at", "load_seconds", "memory_bytes",
            "weights_bytes")}
                       for m in _items(s["models"], "ModelVersionStatus"))
        return ServerStatus(s["server_version"], float(s["uptime_seconds"]), bool(s["ready"]),
                            models)


class _Session(requests.Session):
    """A requests session whose ``verify`` (the CA bundle the caller named) is not replaced by
    ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` from the environment: requests lets those win
    over a session's own ``verify`` (psf/requests#3829), so a private CA would be ignored."""

    def __init__(self, verify: str | bool | None) -> None:
        super().__init__()
        self._pinned_verify = verify
        if verify is not None:
            self.verify = verify

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> dict[str, Any]:
        merged: dict[str, Any] = super().merge_environment_settings(url, proxies, stream,
                                                                    verify, cert)
        if self._pinned_verify is not None and verify is None:
            merged["verify"] = self._pinned_verify
        return merged


def split_wsdl_url(url: str) -> tuple[str, str]:
    """``(endpoint, WSDL URL)`` from either one: ``http://h:8080/`` or ``http://h:8080/?wsdl``
    (any case; a trailing ``?`` is dropped too)."""
    base, sep, query = url.partition("?")
    if sep and query.lower() in ("wsdl", "wsdl="):
        return base, base + "?wsdl"
    base = url.rstrip("?")
    return base, base + "?wsdl"


def _typed_fault(fault: zeep.exceptions.Fault) -> ClientError:
    code = str(fault.code or "Server.Internal")
    code = code.split(":", 1)[-1]
    message = str(fault.message or "")
    request_id = ""
    detail = fault.detail
    if detail is not None:
        found = detail.find("{%s}ServiceFault" % TNS)
        if found is not None:
            code = found.findtext("{%s}code" % TNS) or code
            message = found.findtext("{%s}message" % TNS) or message
            request_id = found.findtext("{%s}request_id" % TNS) or ""
    return fault_class(code)(message, code, request_id)
