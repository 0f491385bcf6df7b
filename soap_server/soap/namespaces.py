"""The contract's names: target namespace (versioned), service, port and binding names."""

#: Target namespace of the contract; a breaking change to the WSDL gets a new version here.
TNS = "urn:tfsoap:predict:v1"
SERVICE_NAME = "PredictService"
PORT_TYPE_NAME = "PredictServicePortType"
BINDING_NAME = "PredictServiceSoapBinding"
PORT_NAME = "PredictServiceSoap"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_HTTP_TRANSPORT = "http://schemas.xmlsoap.org/soap/http"
#: Address written into the committed ``wsdl/PredictService.wsdl``.
PLACEHOLDER_ADDRESS = "http://localhost:8080/"
