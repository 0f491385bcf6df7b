"""The Spyne types of the contract: ``Tensor`` (modelled on ``TensorProto``) and metadata.

WSDL rules these follow (measured with wsimport, Mono wsdl and svcutil; see the WSDL tests):
required fields are ``minOccurs=1`` and not nillable, optional ones ``minOccurs=0`` and not
nillable (no ``JAXBElement``/``Nullable`` in generated code); arrays are a wrapper element with
non-nillable repeated items; integers are ``int``/``long``, never unbounded ``xs:integer``.
"""

from __future__ import annotations

from typing import Any

from spyne import (
    Array,
    Boolean,
    ByteArray,
    ComplexModel,
    DateTime,
    Double,
    Enum,
    Float,
    Integer32,
    Integer64,
    Unicode,
)

from model_store.store import SUPPORTED_DTYPES

from .namespaces import TNS


def required(t: Any) -> Any:
    """A required, non-nillable field of type ``t``."""
    return t.customize(min_occurs=1, nillable=False)


def optional(t: Any) -> Any:
    """An optional, non-nillable field of type ``t``."""
    return t.customize(min_occurs=0, nillable=False)


def optional_text() -> Any:
    """An optional string field that may also arrive empty or nil when unset (WCF's serializer
    sends ``<version_label i:nil="true"/>`` for a null string): Spyne reads both as None, which
    counts as absent. The WSDL still says ``minOccurs="0"`` and not nillable."""
    t = optional(Unicode)
    t.tfsoap_nil_is_absent = True  # read by protocol.TfsoapSoap11.from_element
    for check in ("validate_string", "validate_native"):
        setattr(t, check, staticmethod(
            lambda cls, value, base=getattr(Unicode, check): value is None or base(cls, value)))
    return t


def array_of(item: Any) -> Any:
    """An array type: a wrapper element holding non-nillable repeated items."""
    return Array(item.customize(nillable=False, min_occurs=0), nillable=False)


DataType = Enum(*SUPPORTED_DTYPES, type_name="DataType")
DataType.__namespace__ = TNS
OutputEncoding = Enum("AUTO", "TYPED", "TENSOR_CONTENT", type_name="OutputEncoding")
OutputEncoding.__namespace__ = TNS
VersionState = Enum("LOADING", "AVAILABLE", "FAILED", type_name="VersionState")
VersionState.__namespace__ = TNS

LongArray = array_of(Integer64)
IntArray = array_of(Integer32)
FloatArray = array_of(Float)
DoubleArray = array_of(Double)
BooleanArray = array_of(Boolean)
BytesArray = array_of(ByteArray)
StringArray = array_of(Unicode)


class Tensor(ComplexModel):
    """A tensor on the wire, after TensorFlow's ``TensorProto``: typed values or raw bytes."""

    __namespace__ = TNS
    _type_info = [
        ("name", required(Unicode)),
        ("dtype", required(DataType)),
        ("shape", required(LongArray)),
        ("float_val", optional(FloatArray)),
        ("double_val", optional(DoubleArray)),
        ("int_val", optional(IntArray)),
        ("int64_val", optional(LongArray)),
        ("bool_val", optional(BooleanArray)),
        ("string_val", optional(BytesArray)),
        ("tensor_content", optional(ByteArray)),
    ]


TensorArray = array_of(Tensor)


class TensorInfo(ComplexModel):
    """One input or output of a model: alias, dtype and shape (-1 for an unknown dimension)."""

    __namespace__ = TNS
    _type_info = [
        ("name", required(Unicode)),
        ("dtype", required(DataType)),
        ("shape", optional(LongArray)),
        ("rank_known", required(Boolean)),
    ]


TensorInfoArray = array_of(TensorInfo)


class BatchingInfo(ComplexModel):
    """The dynamic batching a model version is served with."""

    __namespace__ = TNS
    _type_info = [
        ("enabled", required(Boolean)),
        ("max_batch_size", required(Integer32)),
        ("batch_timeout_ms", required(Double)),
        ("max_enqueued_batches", required(Integer32)),
    ]


class ModelSummary(ComplexModel):
    """A model in ``ListModels``: its versions and which one answers by default."""

    __namespace__ = TNS
    _type_info = [
        ("name", required(Unicode)),
        ("latest_version", required(Integer64)),
        ("versions", required(LongArray)),
        ("state", required(VersionState)),
        ("description", required(Unicode)),
    ]


ModelSummaryArray = array_of(ModelSummary)


class ModelVersionStatus(ComplexModel):
    """The state of one loaded model version, for ``GetServerStatus``."""

    __namespace__ = TNS
    _type_info = [
        ("model_name", required(Unicode)),
        ("version", required(Integer64)),
        ("state", required(VersionState)),
        ("error", optional(Unicode)),
        ("requests_completed", required(Integer64)),
        ("requests_rejected", required(Integer64)),
        # lifecycle (0.2): what is served and since when
        ("content_hash", optional(Unicode)),
        ("loaded_at", optional(DateTime)),
        ("load_seconds", optional(Double)),
        # memory (0.2): resident bytes the load added (measured), bytes held as variables
        ("memory_bytes", optional(Integer64)),
        ("weights_bytes", optional(Integer64)),
    ]


ModelVersionStatusArray = array_of(ModelVersionStatus)


class PredictResult(ComplexModel):
    """The outputs of a ``Predict`` call and the model version that computed them."""

    __namespace__ = TNS
    _type_info = [
        ("model_name", required(Unicode)),
        ("version", required(Integer64)),
        ("outputs", required(TensorArray)),
    ]


class ModelMetadata(ComplexModel):
    """A model version's signature: inputs, outputs, labels, and the versions on offer."""

    __namespace__ = TNS
    _type_info = [
        ("model_name", required(Unicode)),
        ("version", required(Integer64)),
        ("versions", required(LongArray)),
        ("state", required(VersionState)),
        ("description", required(Unicode)),
        ("inputs", required(TensorInfoArray)),
        ("outputs", required(TensorInfoArray)),
        ("labels", required(StringArray)),
        ("batching", optional(BatchingInfo)),
        ("error", optional(Unicode)),
    ]


class ServerStatus(ComplexModel):
    """Health: server version, uptime, readiness and every model version's state."""

    __namespace__ = TNS
    _type_info = [
        ("server_version", required(Unicode)),
        ("uptime_seconds", required(Double)),
        ("ready", required(Boolean)),
        ("models", required(ModelVersionStatusArray)),
    ]
