"""``prescan``, the bound on attributes read before a request is parsed: the same verdicts on
the fast scan (a few ``=`` found by ``bytes.find``) and the regular expression (many ``=``)."""

from __future__ import annotations

import pytest

from soap_server.soap.envelope import MAX_ATTRIBUTE_NAMES, MAX_ATTRIBUTES, prescan
from soap_server.soap.faults import MalformedRequestError

ENV = (b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
       b"xmlns:t='urn:t'><soapenv:Body>%s</soapenv:Body></soapenv:Envelope>")


def names(n: int, sep: bytes = b'="', width: int = 1) -> bytes:
    return b" ".join(b"a" + str(i).zfill(width).encode() + sep + b'1"' for i in range(n))


@pytest.mark.parametrize("padding", [b"", b"x= " * (MAX_ATTRIBUTES + 1)],
                         ids=["few-equals", "many-equals"])
def test_distinct_names_over_the_limit_are_refused(padding: bytes) -> None:
    ok = ENV % (b"<t:m " + names(MAX_ATTRIBUTE_NAMES - 2) + b">" + padding + b"</t:m>")
    prescan(ok)  # 62 names and the two namespace declarations: at the limit
    for sep in (b'="', b' = "', b"\t=\n'"):
        bad = ENV % (b"<t:m " + names(MAX_ATTRIBUTE_NAMES - 1, sep) + b">" + padding + b"</t:m>")
        with pytest.raises(MalformedRequestError, match="attribute"):
            prescan(bad.replace(b"'1\"", b"'1'"))


@pytest.mark.parametrize("padding", [b"", b"x= " * (MAX_ATTRIBUTES + 1)],
                         ids=["few-equals", "many-equals"])
def test_many_uses_of_one_name_are_refused(padding: bytes) -> None:
    many = b"".join(b'<t:v a="1"/>' for _ in range(MAX_ATTRIBUTES))
    with pytest.raises(MalformedRequestError, match="attribute"):
        prescan(ENV % (many + padding))
    prescan(ENV % (many[: -len(b'<t:v a="1"/>') * 3] + padding))


def test_equals_signs_in_text_are_not_attributes() -> None:
    # base64 padding and '=' in text, however many, are no attribute (no quote follows)
    prescan(ENV % (b"<t:c>" + b"QUJD=" * 5000 + b"</t:c>"))
    prescan(ENV % (b"<t:c>AAAA==</t:c>"))


def test_a_long_name_is_one_name() -> None:
    # names longer than the 200 bytes read back from '=' are told apart by their last 200
    long = b" ".join(b"n" * 300 + str(i).encode() + b'="1"' for i in range(MAX_ATTRIBUTE_NAMES))
    with pytest.raises(MalformedRequestError):
        prescan(ENV % (b"<t:m " + long + b"/>"))
    same = b" ".join(str(i).encode() + b"n" * 300 + b'="1"' for i in range(MAX_ATTRIBUTE_NAMES))
    prescan(ENV % (b"<t:m " + same + b"/>"))


def test_a_declaration_is_refused() -> None:
    with pytest.raises(MalformedRequestError, match="DOCTYPE"):
        prescan(b'<!DOCTYPE x [<!ENTITY a "b">]>' + ENV % b"")
