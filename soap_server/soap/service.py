"""``PredictService``: the Spyne operations. Each one decodes, calls the dataplane, encodes.

The arguments of ``Predict`` arrive already decoded to numpy by ``protocol.TfsoapSoap11`` and its
result is written by the same protocol; the Spyne signatures here define the WSDL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from spyne import Integer64, ServiceBase, Unicode, rpc

from ..dataplane import DataPlane
from ..dataplane import ModelMetadata as MetadataInfo
from ..security import ANONYMOUS, CALLER_KEY, Caller
from .faults import ServiceFault, to_fault
from .protocol import FastPredictResponse, request_id, wants_packed
from .types import (
    BatchingInfo,
    ModelMetadata,
    ModelSummary,
    ModelSummaryArray,
    ModelVersionStatus,
    OutputEncoding,
    PredictResult,
    ServerStatus,
    StringArray,
    TensorArray,
    TensorInfo,
    optional,
    optional_text,
    required,
)

_OPS: dict[str, Any] = {"_throws": [ServiceFault], "_wsdl_part_name": "parameters"}


def _caller(ctx: Any) -> Caller:
    """The caller the HTTP front authenticated (anonymous when no users file is set)."""
    env = getattr(ctx.transport, "req_env", None) or {}
    caller = env.get(CALLER_KEY, ANONYMOUS)
    return caller if isinstance(caller, Caller) else ANONYMOUS


def _plane(ctx: Any) -> DataPlane:
    plane: DataPlane = ctx.app.dataplane
    return plane


def _tensor_infos(specs: Any) -> list[TensorInfo]:
    return [TensorInfo(name=t.alias, dtype=t.dtype,
                       shape=list(t.shape) if t.shape is not None else None,
                       rank_known=t.shape is not None) for t in specs]


def _metadata(m: MetadataInfo) -> ModelMetadata:
    sig = m.signature
    batching = None
    if m.batching is not None:
        batching = BatchingInfo(enabled=m.batching.enabled,
                                max_batch_size=m.batching.max_batch_size,
                                batch_timeout_ms=m.batching.batch_timeout_ms,
                                max_enqueued_batches=m.batching.max_enqueued_batches)
    return ModelMetadata(
        model_name=m.model_name, version=m.version, versions=m.versions, state=m.state,
        description=sig.description if sig else "",
        inputs=_tensor_infos(sig.inputs) if sig else [],
        outputs=_tensor_infos(sig.outputs) if sig else [],
        labels=list(sig.labels) if sig else [], batching=batching, error=m.error or None)


class PredictService(ServiceBase):
    """Run frozen TensorFlow models: predict, describe, list, and report health."""

    @classmethod
    def call_wrapper(cls, ctx: Any, args: Any = None) -> Any:
        ctx.event.tfsoap_called = True  # the dataplane logs the request from here on
        try:
            return super().call_wrapper(ctx, args)
        except Exception as exc:  # translated once, here, into the fault the client sees
            raise to_fault(exc, request_id(ctx)) from None

    # ``version_label`` (TF Serving's ``stable``, ``canary``...) is optional and last, so that
    # requests written before it existed stay valid.
    @rpc(required(Unicode), optional(Integer64), required(TensorArray), optional(StringArray),
         optional(OutputEncoding), optional_text(), _returns=required(PredictResult), **_OPS)
    def Predict(ctx, model_name, version, inputs, output_filter, output_encoding,  # noqa: N802
                version_label):
        """Run a model on input tensors: the latest version unless a version or label is given."""
        result = _plane(ctx).predict(model_name, version, [(t.name, t.value) for t in inputs],
                                     output_filter, request_id(ctx), _caller(ctx),
                                     version_label=version_label)
        return FastPredictResponse(result, wants_packed(inputs, output_encoding))

    @rpc(required(Unicode), optional(Integer64), optional_text(),
         _returns=required(ModelMetadata), **_OPS)
    def GetModelMetadata(ctx, model_name, version, version_label):  # noqa: N802
        """A model's inputs, outputs, labels, versions and batching settings."""
        return _metadata(_plane(ctx).metadata(model_name, version, request_id(ctx),
                                                  _caller(ctx),
                                                  version_label=version_label))

    @rpc(_returns=required(ModelSummaryArray), **_OPS)
    def ListModels(ctx):  # noqa: N802
        """Every model served, with its versions."""
        return [ModelSummary(name=m.name, latest_version=m.latest_version, versions=m.versions,
                             state=m.state, description=m.description)
                for m in _plane(ctx).list_models(request_id(ctx), _caller(ctx))]

    @rpc(_returns=required(ServerStatus), **_OPS)
    def GetServerStatus(ctx):  # noqa: N802
        """Server version, uptime, readiness and the state of every model version."""
        s = _plane(ctx).status(request_id(ctx), _caller(ctx))
        return ServerStatus(
            server_version=s.server_version, uptime_seconds=s.uptime_seconds, ready=s.ready,
            models=[ModelVersionStatus(model_name=m.model_name, version=m.version, state=m.state,
                                       error=m.error or None, requests_completed=m.completed,
                                       requests_rejected=m.rejected,
                                       content_hash=m.content_hash or None,
                                       loaded_at=_utc(m.loaded_at),
                                       load_seconds=m.load_seconds if m.loaded_at else None,
                                       memory_bytes=m.memory_bytes if m.loaded_at else None,
                                       weights_bytes=m.weights_bytes if m.loaded_at else None)
                    for m in s.models])


def _utc(epoch: float) -> datetime | None:
    """A ``time.time()`` value as an aware UTC datetime (None for 0: never loaded)."""
    return datetime.fromtimestamp(epoch, UTC) if epoch else None
