"""The Python client casts inputs to the signature's dtypes where it is safe (float64 arrays
for a DT_FLOAT input, as numpy and scikit-learn make them), refuses where it is not, and takes
the endpoint or the WSDL address."""

from __future__ import annotations

import numpy as np
import pytest

import tfsoap_client as tc
from tfsoap_client.client import split_wsdl_url
from tfsoap_client.tensors import cast_for_signature


@pytest.mark.parametrize("value, dtype, want", [
    (np.array([0.5, -2.0]), "DT_FLOAT", np.float32),
    (np.array([0.5, -2.0]), "DT_HALF", np.float16),
    (np.array([1, 2]), "DT_FLOAT", np.float32),
    ([1.0, 2.0], "DT_INT32", np.int32),
    ([3, 250], "DT_UINT8", np.uint8),
    (np.array([-7, 7], np.int64), "DT_INT8", np.int8),
    ([True, False], "DT_BOOL", np.bool_),
    (np.array([1.5], np.float32), "DT_DOUBLE", np.float64),
])
def test_safe_casts_are_made(value: object, dtype: str, want: type) -> None:
    got = cast_for_signature("x", value, dtype)
    assert got.dtype == np.dtype(want)
    np.testing.assert_array_equal(got.astype(np.float64),
                                  np.asarray(value).astype(np.float64))


@pytest.mark.parametrize("value, dtype, reason", [
    ([1.5, 2.0], "DT_INT32", "not all whole numbers"),
    ([300], "DT_UINT8", "do not fit DT_UINT8"),
    ([-1], "DT_UINT16", "do not fit"),
    ([1e300], "DT_FLOAT", "overflow DT_FLOAT"),
    ([np.nan], "DT_INT64", "not all whole numbers"),
    ([1, 0], "DT_BOOL", "booleans and numbers"),
    ([True], "DT_FLOAT", "booleans and numbers"),
    (["a"], "DT_FLOAT", "must be DT_FLOAT"),
    ([1.0], "DT_STRING", "must be DT_STRING"),
])
def test_unsafe_casts_are_refused(value: object, dtype: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        cast_for_signature("x", value, dtype)


def test_float64_arrays_are_accepted_for_float_inputs(client) -> None:
    x = np.random.default_rng(0).standard_normal((3, 4))  # float64, numpy's default
    out = client.predict("echo_float", {"x": x})
    assert out["y"].dtype == np.float32
    np.testing.assert_allclose(out["y"], x.astype(np.float32))
    out = client.predict("echo_int32", {"x": np.array([[1.0, 2.0]])})
    np.testing.assert_array_equal(out["y"], np.array([[1, 2]], np.int32))


def test_unsafe_inputs_are_refused_before_sending(client) -> None:
    with pytest.raises(tc.InvalidInputError, match="not all whole numbers") as caught:
        client.predict("echo_int32", {"x": np.array([[1.5]])})
    assert caught.value.code == "Client.InvalidInput" and caught.value.request_id == ""
    with pytest.raises(tc.InvalidInputError, match="do not fit DT_UINT8"):
        client.predict("echo_uint8", {"x": np.array([[256]])})


def test_casting_can_be_turned_off(server) -> None:
    raw = tc.PredictClient(server.url, cast_inputs=False)
    with pytest.raises(tc.InvalidInputError) as caught:
        raw.predict("echo_float", {"x": np.zeros((1, 2))})
    assert caught.value.request_id  # the server refused it


@pytest.mark.parametrize("given", ["{url}", "{url}?wsdl", "{url}?WSDL", "{url}?"])
def test_the_endpoint_or_the_wsdl_address_both_work(server, given: str) -> None:
    c = tc.PredictClient(given.format(url=server.url))
    assert c.url == server.url.rstrip("?")
    assert [m.name for m in c.list_models()]


def test_split_wsdl_url() -> None:
    assert split_wsdl_url("http://h:8080/?wsdl") == ("http://h:8080/", "http://h:8080/?wsdl")
    assert split_wsdl_url("http://h:8080/") == ("http://h:8080/", "http://h:8080/?wsdl")
