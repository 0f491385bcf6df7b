"""The WSDL's rules: what wsimport, Mono ``wsdl``/``svcutil`` and WS-I BP 1.1 need (measured).

- document/literal wrapped: one part per input/output message, named ``parameters`` (Mono
  ``wsdl`` does not unwrap otherwise and ``svcutil`` writes an empty file), whose element is
  named after the operation (``...Response`` for the output);
- every operation declares the ``ServiceFault`` fault with its detail element (without a
  detail Mono raises a generic ``SoapHeaderException``, not a typed ``SoapException``);
- a quoted ``SOAPAction`` per operation (binding ``soapAction``), repeated as ``wsaw:Action``
  on the port type input (Mono's ``svcutil`` reads only that one and otherwise sends ``"*"``);
- no unbounded ``xs:integer``; required fields ``minOccurs=1`` and not nillable, optional
  ones not nillable (optional+nillable becomes ``JAXBElement<T>``/``Nullable<T>``); arrays are
  a wrapper element with non-nillable repeated items (bare repeated elements broke svcutil);
- service, port, binding and port type names collide with nothing (wsimport renames
  colliding classes ``*_Service``);
- the committed ``wsdl/PredictService.wsdl`` is what ``?wsdl`` serves, apart from the address.
"""

from __future__ import annotations

import base64
import copy
import struct
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from soap_server.soap.namespaces import (
    BINDING_NAME,
    PLACEHOLDER_ADDRESS,
    PORT_NAME,
    PORT_TYPE_NAME,
    SERVICE_NAME,
    SOAP_HTTP_TRANSPORT,
    TNS,
)
from soap_server.soap.wsdl import WSAW_NS, replace_address

from ..raw import SOAP_ENV, envelope, post

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "wsdl" / "PredictService.wsdl"
XS = "http://www.w3.org/2001/XMLSchema"
NS = {"w": "http://schemas.xmlsoap.org/wsdl/", "s": "http://schemas.xmlsoap.org/wsdl/soap/",
      "xs": XS}
OPERATIONS = ("Predict", "GetModelMetadata", "ListModels", "GetServerStatus")
#: Integer types with no bounds: Java BigInteger, C# string or decimal.
UNBOUNDED_INTEGERS = {"integer", "nonNegativeInteger", "positiveInteger", "nonPositiveInteger",
                      "negativeInteger", "decimal"}


@pytest.fixture(scope="module")
def wsdl() -> etree._Element:
    return etree.parse(str(COMMITTED)).getroot()


@pytest.fixture(scope="module")
def schema_el(wsdl: etree._Element) -> etree._Element:
    found = wsdl.findall("w:types/xs:schema", NS)
    assert len(found) == 1, "one embedded schema"
    return found[0]


@pytest.fixture(scope="module")
def schema(schema_el: etree._Element) -> etree.XMLSchema:
    # Standalone copy: QName values like type="tns:Tensor" rely on the prefixes that
    # wsdl:definitions declares, so the copy's root declares every in-scope prefix.
    standalone = etree.Element(schema_el.tag, attrib=dict(schema_el.attrib),
                               nsmap=schema_el.nsmap)
    standalone.extend(copy.deepcopy(list(schema_el)))
    return etree.XMLSchema(standalone)


def _qname(el: etree._Element, attr: str) -> etree.QName:
    prefix, _, local = el.get(attr, "").rpartition(":")
    return etree.QName(el.nsmap[prefix or None], local)


def _complex_types(schema_el: etree._Element) -> dict[str, etree._Element]:
    return {t.get("name"): t for t in schema_el.findall("xs:complexType", NS)}


def _global_elements(schema_el: etree._Element) -> dict[str, etree._Element]:
    return {e.get("name"): e for e in schema_el.findall("xs:element", NS)}


def _messages(wsdl: etree._Element) -> dict[str, etree._Element]:
    return {m.get("name"): m for m in wsdl.findall("w:message", NS)}


def _port_type_ops(wsdl: etree._Element) -> list[etree._Element]:
    return wsdl.findall("w:portType/w:operation", NS)


def test_embedded_schema_compiles_and_imports_nothing(schema: etree.XMLSchema,
                                                      schema_el: etree._Element) -> None:
    assert schema is not None
    assert schema_el.get("targetNamespace") == TNS
    assert schema_el.get("elementFormDefault") == "qualified"
    assert not schema_el.findall("xs:import", NS) and not schema_el.findall("xs:include", NS)


def test_binding_is_document_literal_over_http(wsdl: etree._Element) -> None:
    (binding,) = wsdl.findall("w:binding", NS)
    soap_binding = binding.find("s:binding", NS)
    assert soap_binding.get("style") == "document"
    assert soap_binding.get("transport") == SOAP_HTTP_TRANSPORT
    for op in binding.findall("w:operation", NS):
        assert op.find("s:operation", NS).get("style") in (None, "document")
        for body in op.findall("*/s:body", NS):
            assert body.get("use") == "literal", op.get("name")
            assert body.get("encodingStyle") is None and body.get("parts") is None
    assert sorted(op.get("name") for op in binding.findall("w:operation", NS)) == \
        sorted(OPERATIONS)


def test_operations_are_wrapped_with_one_parameters_part(wsdl: etree._Element,
                                                         schema_el: etree._Element) -> None:
    messages = _messages(wsdl)
    elements = _global_elements(schema_el)
    types = _complex_types(schema_el)
    names = [op.get("name") for op in _port_type_ops(wsdl)]
    assert len(names) == len(set(names)), "no overloaded operations (WS-I R2304)"
    for op in _port_type_ops(wsdl):
        name = op.get("name")
        for direction, wrapper in (("input", name), ("output", name + "Response")):
            message = messages[_qname(op.find(f"w:{direction}", NS), "message").localname]
            parts = message.findall("w:part", NS)
            assert [p.get("name") for p in parts] == ["parameters"], (name, direction)
            assert parts[0].get("type") is None, "parts refer to elements (WS-I R2204)"
            element = _qname(parts[0], "element")
            assert element == etree.QName(TNS, wrapper), (name, direction, element)
            decl = elements[wrapper]
            assert decl.get("nillable") in (None, "false"), wrapper
            wrapper_type = types[_qname(decl, "type").localname]
            assert wrapper_type.findall("xs:attribute", NS) == [], wrapper
            assert [etree.QName(c).localname for c in wrapper_type] in ([], ["sequence"]), \
                wrapper


def test_every_operation_declares_the_service_fault_with_its_detail(
        wsdl: etree._Element, schema_el: etree._Element) -> None:
    messages = _messages(wsdl)
    for op in _port_type_ops(wsdl):
        faults = op.findall("w:fault", NS)
        assert [f.get("name") for f in faults] == ["ServiceFault"], op.get("name")
        parts = messages[_qname(faults[0], "message").localname].findall("w:part", NS)
        assert len(parts) == 1 and _qname(parts[0], "element") == etree.QName(TNS,
                                                                              "ServiceFault")
    for op in wsdl.findall("w:binding/w:operation", NS):
        soap_faults = op.findall("w:fault/s:fault", NS)
        assert [(f.get("name"), f.get("use")) for f in soap_faults] == \
            [("ServiceFault", "literal")], op.get("name")
    detail = _global_elements(schema_el)["ServiceFault"]
    detail_type = _complex_types(schema_el)[_qname(detail, "type").localname]
    fields = [(e.get("name"), e.get("type"), e.get("minOccurs", "1"))
              for e in detail_type.findall("xs:sequence/xs:element", NS)]
    assert fields == [("code", "xs:string", "1"), ("message", "xs:string", "1"),
                      ("request_id", "xs:string", "1")]


def test_every_operation_has_a_soap_action_also_given_as_wsaw_action(
        wsdl: etree._Element) -> None:
    actions = {op.get("name"): op.find("s:operation", NS).get("soapAction")
               for op in wsdl.findall("w:binding/w:operation", NS)}
    assert actions == {op: f"{TNS}/{op}" for op in OPERATIONS}
    for op in _port_type_ops(wsdl):
        assert op.find("w:input", NS).get(f"{{{WSAW_NS}}}Action") == actions[op.get("name")]


def test_no_unbounded_integer_types(schema_el: etree._Element) -> None:
    used = {(el.get("name"), _qname(el, attr))
            for attr in ("type", "base") for el in schema_el.iter() if el.get(attr)}
    bad = [(name, q.localname) for name, q in used
           if q.namespace == XS and q.localname in UNBOUNDED_INTEGERS]
    assert not bad, bad


def test_fields_are_never_nillable_and_optional_means_min_occurs_zero(
        schema_el: etree._Element) -> None:
    for el in schema_el.iter(f"{{{XS}}}element"):
        assert el.get("nillable") in (None, "false"), el.get("name")
        assert el.get("minOccurs", "1") in ("0", "1"), el.get("name")
    types = _complex_types(schema_el)

    def occurs(type_name: str) -> dict[str, str]:
        return {e.get("name"): e.get("minOccurs", "1")
                for e in types[type_name].findall("xs:sequence/xs:element", NS)}

    # version_label came after 0.1: optional and last, so earlier requests stay valid
    assert occurs("Predict") == {"model_name": "1", "version": "0", "inputs": "1",
                                 "output_filter": "0", "output_encoding": "0",
                                 "version_label": "0"}
    assert occurs("GetModelMetadata") == {"model_name": "1", "version": "0",
                                          "version_label": "0"}
    for operation in ("Predict", "GetModelMetadata"):
        assert list(occurs(operation))[-1] == "version_label"
    tensor = occurs("Tensor")
    assert {k: tensor[k] for k in ("name", "dtype", "shape")} == \
        {"name": "1", "dtype": "1", "shape": "1"}
    assert {v for k, v in tensor.items() if k not in ("name", "dtype", "shape")} == {"0"}
    assert occurs("PredictResult") == {"model_name": "1", "version": "1", "outputs": "1"}


def test_arrays_are_wrappers_of_non_nillable_repeated_items(schema_el: etree._Element) -> None:
    for ctype in schema_el.findall("xs:complexType", NS):
        children = ctype.findall("xs:sequence/xs:element", NS)
        repeated = [e for e in children if e.get("maxOccurs", "1") != "1"]
        if not repeated:
            continue
        # A wrapper type holds exactly one repeated item and nothing else.
        assert len(children) == 1, f"{ctype.get('name')}: repeated element beside others"
        item = repeated[0]
        assert item.get("maxOccurs") == "unbounded" and item.get("minOccurs") == "0"
        assert item.get("nillable") in (None, "false"), ctype.get("name")
        assert ctype.get("name").endswith("Array"), ctype.get("name")


def test_service_port_binding_and_port_type_names_collide_with_nothing(
        wsdl: etree._Element, schema_el: etree._Element) -> None:
    (service,) = wsdl.findall("w:service", NS)
    (port,) = service.findall("w:port", NS)
    (binding,) = wsdl.findall("w:binding", NS)
    (port_type,) = wsdl.findall("w:portType", NS)
    names = [service.get("name"), port.get("name"), binding.get("name"), port_type.get("name")]
    assert names == [SERVICE_NAME, PORT_NAME, BINDING_NAME, PORT_TYPE_NAME]
    assert len(set(names)) == 4
    others = set(OPERATIONS)
    others |= {t.get("name") for t in schema_el if t.get("name")}
    assert not set(names) & others, set(names) & others
    assert _qname(port, "binding").localname == BINDING_NAME
    assert _qname(binding, "type").localname == PORT_TYPE_NAME


def test_committed_wsdl_is_what_the_server_serves(server: Any) -> None:
    with urllib.request.urlopen(server.url + "?wsdl", timeout=30) as answer:
        served = answer.read()
    assert server.url.encode() in served
    assert replace_address(served, PLACEHOLDER_ADDRESS) == COMMITTED.read_bytes(), (
        "wsdl/PredictService.wsdl is stale: run `tfsoap wsdl --output wsdl/PredictService.wsdl`")


_DIGIT = ("<t:Tensor><t:name>images</t:name><t:dtype>DT_FLOAT</t:dtype><t:shape><t:long>1"
          "</t:long><t:long>64</t:long></t:shape>{values}</t:Tensor>")
_REQUESTS = {
    "ListModels": "<t:ListModels/>",
    "GetServerStatus": "<t:GetServerStatus/>",
    "GetModelMetadata": "<t:GetModelMetadata><t:model_name>digits</t:model_name>"
                        "</t:GetModelMetadata>",
    "Predict typed": "<t:Predict><t:model_name>digits</t:model_name><t:inputs>" + _DIGIT.format(
        values="<t:float_val>" + "<t:float>0.5</t:float>" * 64 + "</t:float_val>")
        + "</t:inputs></t:Predict>",
    "Predict packed": "<t:Predict><t:model_name>digits</t:model_name><t:inputs>" + _DIGIT.format(
        values="<t:tensor_content>" + base64.b64encode(struct.pack("<64f", *[0.5] * 64)).decode()
        + "</t:tensor_content>") + "</t:inputs></t:Predict>",
}


@pytest.mark.parametrize("request_name", sorted(_REQUESTS))
def test_requests_and_answers_validate_against_the_schema(
        server: Any, schema: etree.XMLSchema, request_name: str) -> None:
    body = _REQUESTS[request_name]
    request = etree.fromstring(envelope(body)).find(f"{{{SOAP_ENV}}}Body")[0]
    schema.assertValid(request)
    op = request_name.split()[0]
    answer = post(server.url, envelope(body), headers={"SOAPAction": f'"{TNS}/{op}"'})
    assert answer.status == 200, answer.body[:500]
    response = etree.fromstring(answer.body).find(f"{{{SOAP_ENV}}}Body")[0]
    assert etree.QName(response) == etree.QName(TNS, op + "Response")
    schema.assertValid(response)


def test_fault_detail_validates_against_the_schema(server: Any,
                                                   schema: etree.XMLSchema) -> None:
    body = "<t:GetModelMetadata><t:model_name>no_such_model</t:model_name></t:GetModelMetadata>"
    answer = post(server.url, envelope(body))
    fault = etree.fromstring(answer.body).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    detail = fault.find("detail")
    assert detail is not None and len(detail) == 1, answer.body[:500]
    assert etree.QName(detail[0]) == etree.QName(TNS, "ServiceFault")
    schema.assertValid(detail[0])


def test_only_the_namespaces_the_document_uses_are_declared(wsdl: etree._Element) -> None:
    """A SOAP 1.2 prefix alone (``wsdlsoap12``, ``soap12env``) makes some C/C++ toolkits
    generate a SOAP 1.2 client, which this SOAP 1.1 service refuses."""
    used = set()
    for el in wsdl.iter():
        used.add(etree.QName(el).namespace)
        for name, value in el.attrib.items():
            used.add(etree.QName(name).namespace)
            if ":" in value and not value.startswith(("http:", "urn:")):
                used.add(el.nsmap.get(value.split(":", 1)[0]))
    declared = {uri for el in wsdl.iter() for uri in el.nsmap.values()}
    assert declared <= used, declared - used
    assert not any("soap12" in uri or "2003/05/soap" in uri for uri in declared)
