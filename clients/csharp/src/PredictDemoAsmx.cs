// PredictService through the ASMX-style proxy that Mono's `wsdl` generates
// (System.Web.Services SoapHttpClientProtocol, namespace Tfsoap.Asmx).
//
//   mono PredictDemoAsmx.exe ENDPOINT IMAGES [--model NAME] [--fault-model NAME] [--timeout-ms N]
//        [--user U --password P [--no-preauthenticate]] [--ca CA.pem]
//        [--client-cert CLIENT.p12 [--client-cert-password P]]
//
// Same steps and output lines as clients/java/src/PredictDemo.java: list the models, read the
// metadata, Predict with float_val and with tensor_content, and show the typed fault
// (SoapException with the fault code and the ServiceFault detail) for an unknown model.
// With --user/--password every call sends HTTP Basic credentials (Credentials and
// PreAuthenticate; --no-preauthenticate waits for the server's 401 challenge and resends);
// with --ca, https to a server whose certificate that CA signed (TlsTrust in DemoSupport.cs);
// with --client-cert, the proxy's ClientCertificates holds that certificate (mutual TLS).
// The ASMX stack has no WS-Security of its own (that was WSE 3.0, not in Mono): Basic only.
using System;
using System.Collections.Generic;
using System.IO;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Web.Services.Protocols;
using System.Xml;
using Tfsoap.Asmx;

namespace Tfsoap.Demo
{
    public static class PredictDemoAsmx
    {
        const string Tns = "urn:tfsoap:predict:v1";

        public static void Main(string[] args)
        {
            Report.Exit(Run(args));  // not a plain return: see Report.Exit
        }

        static int Run(string[] args)
        {
            DemoOptions o = DemoOptions.Parse(args, "PredictDemoAsmx.exe", "basic");
            if (o == null)
                return Report.Usage;
            Matrix images;
            X509Certificate2 clientCert = null;
            try {
                images = Matrix.Read(o.ImagesPath);
                if (o.CaPath != null)
                    TlsTrust.TrustCa(o.CaPath);
                if (o.ClientCertPath != null)
                    clientCert = new X509Certificate2(o.ClientCertPath, o.ClientCertPassword);
            } catch (Exception e) when (e is IOException || e is FormatException
                                        || e is System.Security.Cryptography.CryptographicException) {
                Console.WriteLine("ERROR input " + Report.OneLine(e.Message));
                return Report.Usage;
            }
            // The proxy's Url comes from the WSDL's address; the endpoint given wins.
            var service = new PredictService { Url = o.Endpoint, Timeout = o.TimeoutMs };
            if (clientCert != null)
                service.ClientCertificates.Add(clientCert);  // offered when the server asks
            if (o.Authenticated) {
                // HTTP Basic on every call. PreAuthenticate sends the Authorization header
                // without waiting for a 401; without it, each request first goes out bare,
                // gets the server's 401 challenge (WWW-Authenticate: Basic realm="tfsoap")
                // and is sent again with the credentials.
                service.Credentials = new NetworkCredential(o.User, o.Password);
                service.PreAuthenticate = o.PreAuthenticate;
            }
            try {
                Demo(service, o.Model, o.FaultModel, images);
                Console.WriteLine("DONE");
                return Report.Ok;
            } catch (SoapException e) {
                ServiceFaultInfo f = ServiceFaultInfo.From(e);
                Console.WriteLine("ERROR fault " + f.Code + " " + Report.OneLine(f.Message));
                return Report.Fault;
            } catch (WebException e) {
                return Report.TransportError(e.Status == WebExceptionStatus.Timeout ? "timeout" : "transport", e);
            } catch (InvalidOperationException e) {
                // What the proxy throws for an answer that is not SOAP (an HTML error page).
                return Report.TransportError("transport", e);
            }
        }

        static void Demo(PredictService service, string model, string faultModel, Matrix images)
        {
            ModelSummary[] models = service.ListModels();
            var names = new List<string>();
            foreach (ModelSummary m in models)
                names.Add(m.name);
            Console.WriteLine("MODELS " + string.Join(" ", names));
            foreach (ModelSummary m in models)
                if (m.name == model)
                    Console.WriteLine("MODEL " + m.name + " " + m.latest_version + " " + m.state);

            // versionSpecified = false: the element is left out and the latest version answers.
            ModelMetadata md = service.GetModelMetadata(model, 0, false, null);
            Console.WriteLine("METADATA " + md.model_name + " " + md.version);
            foreach (TensorInfo t in md.inputs)
                Console.WriteLine("INPUT " + Describe(t));
            foreach (TensorInfo t in md.outputs)
                Console.WriteLine("OUTPUT " + Describe(t));
            string input = md.inputs[0].name;

            PredictResult typed = service.Predict(model, 0, false, new[] { Typed(input, images) },
                                                  null, OutputEncoding.AUTO, false, null);
            Report.Prediction("typed", typed.version, Outputs(typed));
            PredictResult packed = service.Predict(model, 0, false, new[] { Packed(input, images) },
                                                   null, OutputEncoding.AUTO, false, null);
            Report.Prediction("packed", packed.version, Outputs(packed));

            try {
                service.Predict(faultModel, 0, false, new[] { Typed(input, images) },
                                null, OutputEncoding.AUTO, false, null);
                Console.WriteLine("NOFAULT " + faultModel + " answered");
            } catch (SoapHeaderException e) {
                // Mono's answer to a fault without <detail>: the contract promises one.
                Console.WriteLine("UNTYPEDFAULT " + e.Code.Name + " " + Report.OneLine(e.Message));
            } catch (SoapException e) {
                ServiceFaultInfo f = ServiceFaultInfo.From(e);
                Console.WriteLine("FAULT " + f.Code + " " + Report.OneLine(f.Message));
                Console.WriteLine("FAULTCODE " + e.Code.Name);
            }
        }

        static Tensor Header(string name, Matrix m)
        {
            return new Tensor { name = name, dtype = DataType.DT_FLOAT, shape = new long[] { m.Rows, m.Cols } };
        }

        static Tensor Typed(string name, Matrix m)
        {
            Tensor t = Header(name, m);
            t.float_val = m.Values;
            return t;
        }

        static Tensor Packed(string name, Matrix m)
        {
            Tensor t = Header(name, m);
            t.tensor_content = Wire.PackFloats(m.Values);
            return t;
        }

        static List<DemoOutput> Outputs(PredictResult r)
        {
            var list = new List<DemoOutput>();
            foreach (Tensor t in r.outputs) {
                var o = new DemoOutput { Name = t.name, DType = t.dtype.ToString(), Shape = t.shape };
                if (t.tensor_content != null) {
                    o.WireForm = "tensor_content";
                    if (t.dtype == DataType.DT_FLOAT)
                        o.Floats = Wire.UnpackFloats(t.tensor_content);
                    else if (t.dtype == DataType.DT_INT64)
                        o.Longs = Wire.UnpackLongs(t.tensor_content);
                } else {
                    o.WireForm = t.float_val != null ? "float_val" : t.int64_val != null ? "int64_val" : "other";
                    o.Floats = t.float_val ?? new float[0];
                    o.Longs = t.int64_val ?? new long[0];
                }
                list.Add(o);
            }
            return list;
        }

        static string Describe(TensorInfo t)
        {
            string shape = t.rank_known && t.shape != null ? " " + string.Join(" ", t.shape) : " ?";
            return t.name + " " + t.dtype + shape;
        }

        /// <summary>The ServiceFault detail of a SoapException (code and message).</summary>
        sealed class ServiceFaultInfo
        {
            public string Code;
            public string Message;

            public static ServiceFaultInfo From(SoapException e)
            {
                var info = new ServiceFaultInfo { Code = e.Code.Name, Message = e.Message };
                if (e.Detail == null)
                    return info;
                var ns = new XmlNamespaceManager(new NameTable());
                ns.AddNamespace("t", Tns);
                XmlNode fault = e.Detail.SelectSingleNode("t:ServiceFault", ns);
                if (fault != null) {
                    info.Code = fault.SelectSingleNode("t:code", ns)?.InnerText ?? info.Code;
                    info.Message = fault.SelectSingleNode("t:message", ns)?.InnerText ?? info.Message;
                }
                return info;
            }
        }
    }
}
