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
import zeep
import zeep.exceptions
from lxml import etree
from zeep.transports import Transport

from .errors import ClientError, TransportError, fault_class
from .tensors import ENCODINGS, from_wire, inputs_to_wire

TNS = "urn:tfsoap:predict:v1"
SERVICE = "{%s}PredictService" % TNS
PORT = "PredictServiceSoap"


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

    ``url`` is the server's endpoint (``http://host:8080/``). The WSDL comes from ``url?wsdl``
    unless ``wsdl`` names a file or URL (for example the committed ``wsdl/PredictService.wsdl``).
    ``encoding`` is how inputs travel: ``"tensor_content"`` (raw bytes, fast) or ``"typed"``
    (``float_val`` and friends).
    """

    def __init__(self, url: str, *, wsdl: str | None = None, timeout: float = 30.0,
                 encoding: str = "tensor_content", transport: Transport | None = None,
                 settings: zeep.Settings | None = None, plugins: Sequence[Any] = ()) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
        self.url = url
        self.encoding = encoding
        if transport is None:
            session = requests.Session()
            transport = Transport(session=session, timeout=timeout, operation_timeout=timeout)
        settings = settings or zeep.Settings(strict=True, xml_huge_tree=True)
        try:
            self._zeep = zeep.Client(wsdl or url.rstrip("?") + "?wsdl", transport=transport,
                                     settings=settings, plugins=list(plugins))
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
                       output_encoding: str | None = None) -> PredictResult:
        """Like ``predict`` but also says which model version answered."""
        enc = encoding or self.encoding
        kwargs: dict[str, Any] = {"model_name": model,
                                  "inputs": {"Tensor": inputs_to_wire(inputs, enc)}}
        if version is not None:
            kwargs["version"] = int(version)
        if outputs:
            kwargs["output_filter"] = {"string": list(outputs)}
        if output_encoding:
            kwargs["output_encoding"] = output_encoding
        res = self._call("Predict", **kwargs)
        tensors = dict(from_wire(t) for t in _items(res["outputs"], "Tensor"))
        return PredictResult(res["model_name"], int(res["version"]), tensors)

    def predict(self, model: str, inputs: Mapping[str, Any], *, version: int | None = None,
                outputs: Sequence[str] | None = None,
                encoding: str | None = None) -> dict[str, np.ndarray]:
        """Run ``model`` on ``inputs`` (name -> array); returns outputs by name."""
        return self.predict_result(model, inputs, version=version, outputs=outputs,
                                   encoding=encoding).outputs

    def metadata(self, model: str, version: int | None = None) -> ModelMetadata:
        """The inputs, outputs, labels and versions of ``model``."""
        kwargs: dict[str, Any] = {"model_name": model}
        if version is not None:
            kwargs["version"] = int(version)
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
        models = tuple({k: m[k] if k in m else None
                        for k in ("model_name", "version", "state", "error",
                                  "requests_completed", "requests_rejected", "memory_bytes",
                                  "load_seconds")}
                       for m in _items(s["models"], "ModelVersionStatus"))
        return ServerStatus(s["server_version"], float(s["uptime_seconds"]), bool(s["ready"]),
                            models)


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
