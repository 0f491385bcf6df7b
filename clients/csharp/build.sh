#!/bin/sh
# Generate both C# proxies of PredictService with Mono and compile the two demos.
#
#   clients/csharp/build.sh WSDL [BUILD_DIR]
#
# WSDL: a URL (http://host:8080/?wsdl) or a file (wsdl/PredictService.wsdl).
# BUILD_DIR (default clients/csharp/build) gets:
#   AsmxProxy.cs + PredictDemoAsmx.exe   (`wsdl`: SoapHttpClientProtocol, namespace Tfsoap.Asmx)
#   WcfProxy.cs  + PredictDemoWcf.exe    (`svcutil`: ClientBase<T>, data contracts)
# Run them with: mono BUILD_DIR/PredictDemoAsmx.exe ENDPOINT IMAGES   (same for ...Wcf.exe)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
wsdl=${1:?usage: build.sh WSDL [BUILD_DIR]}
build=${2:-$here/build}
case "$wsdl" in
    http://*|https://*|file://*) url=$wsdl ;;
    # svcutil takes URLs only
    *) url="file://$(cd "$(dirname "$wsdl")" && pwd)/$(basename "$wsdl")" ;;
esac

rm -rf "$build"
mkdir -p "$build"
wsdl -nologo -namespace:Tfsoap.Asmx -out:"$build/AsmxProxy.cs" "$url" >"$build/wsdl.log"
svcutil --noLogo --noConfig -o:"$build/WcfProxy.cs" "$url" >"$build/svcutil.log"
# svcutil writes an empty file rather than failing when it cannot map the contract.
grep -q 'class PredictServicePortTypeClient' "$build/WcfProxy.cs" || {
    echo "svcutil generated no client class; see $build/svcutil.log" >&2
    exit 1
}
mcs -nologo -nowarn:1591,0618 -out:"$build/PredictDemoAsmx.exe" \
    -r:System.Web.Services.dll -r:System.Xml.dll -r:Mono.Security.dll \
    "$build/AsmxProxy.cs" "$here/src/DemoSupport.cs" "$here/src/PredictDemoAsmx.cs"
mcs -nologo -nowarn:1591,0618 -out:"$build/PredictDemoWcf.exe" \
    -r:System.ServiceModel.dll -r:System.Runtime.Serialization.dll -r:Mono.Security.dll \
    "$build/WcfProxy.cs" "$here/src/DemoSupport.cs" "$here/src/PredictDemoWcf.cs"
