#!/bin/sh
# Generate the JAX-WS client of PredictService with wsimport and compile PredictDemo.
#
#   clients/java/build.sh WSDL [BUILD_DIR]
#
# WSDL: a URL (http://host:8080/?wsdl) or a file (wsdl/PredictService.wsdl).
# BUILD_DIR (default clients/java/build): gets generated/ (the stubs' sources) and classes/.
# Run the demo afterwards with:
#   java -cp BUILD_DIR/classes:/usr/share/java/jaxws-rt.jar PredictDemo ENDPOINT WSDL IMAGES
set -eu

here=$(cd "$(dirname "$0")" && pwd)
wsdl=${1:?usage: build.sh WSDL [BUILD_DIR]}
build=${2:-$here/build}
# JDK 11+ has no JAX-WS: compile against the API jars of Debian's libjaxws-java / jaxws.
api=/usr/share/java/jaxws-api.jar:/usr/share/java/jaxb-api.jar:/usr/share/java/jws-api.jar
api=$api:/usr/share/java/javax.xml.soap-api.jar

rm -rf "$build/generated" "$build/classes"
mkdir -p "$build/generated" "$build/classes"
# -p: one fixed Java package for the contract; -b: bindings.xml keeps the contract's enum
# names (DataType.DT_INT64, not JAXB's DT_INT_64); -Xnocompile: javac below compiles everything.
wsimport -quiet -Xnocompile -encoding UTF-8 -p tfsoap.predict.v1 -b "$here/bindings.xml" \
    -s "$build/generated" -d "$build/classes" "$wsdl"
javac -nowarn -encoding UTF-8 -cp "$api" -d "$build/classes" \
    $(find "$build/generated" -name '*.java') "$here/src/PredictDemo.java" \
    "$here/src/UsernameTokenHandler.java"
