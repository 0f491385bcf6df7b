"""The one table from error classes to fault codes, and the fault envelope."""

from __future__ import annotations

import logging

import pytest
from lxml import etree

from model_store import errors as e
from soap_server.soap.faults import (
    ALL_CODES,
    MalformedRequestError,
    RequestTooLargeError,
    fault_envelope,
    to_fault,
)

from ..raw import Answer, parse_fault


@pytest.mark.parametrize("exc,code", [
    (e.ModelNotFoundError("m"), "Client.ModelNotFound"),
    (e.InvalidModelNameError("m"), "Client.ModelNotFound"),
    (e.InvalidInputError("m"), "Client.InvalidInput"),
    (MalformedRequestError("m"), "Client.MalformedRequest"),
    (RequestTooLargeError("m"), "Client.RequestTooLarge"),
    (e.UnavailableError("m"), "Server.Unavailable"),
    (e.InferenceError("m"), "Server.InferenceError"),
])
def test_each_error_class_maps_to_its_fault_code(exc: Exception, code: str) -> None:
    fault = to_fault(exc, "rid-1")
    assert (fault.code, fault.faultcode, fault.message, fault.request_id) == (code, code, "m",
                                                                              "rid-1")
    assert code in ALL_CODES


@pytest.mark.parametrize("exc", [RuntimeError("secret /etc/path"), e.StoreError("disk"),
                                 KeyError("k"), e.ModelLoadError("x")])
def test_anything_unmapped_is_server_internal_with_a_generic_message(exc, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="soap_server.soap.faults"):
        fault = to_fault(exc, "rid-2")
    assert fault.code == "Server.Internal"
    assert fault.message == "internal server error (request id rid-2)"
    assert "rid-2" in caplog.text and type(exc).__name__ in caplog.text


def test_fault_envelope_is_well_formed_even_with_hostile_text() -> None:
    body = fault_envelope("Client.InvalidInput", "bad <x> & \x00\x1b ]]>", "r")
    f = parse_fault(Answer(500, "text/xml", body, {}))
    assert f.code == f.faultcode == "Client.InvalidInput"
    assert f.message.startswith("bad <x> & ") and f.request_id == "r"
    etree.fromstring(body)
