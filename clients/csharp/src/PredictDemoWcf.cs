// PredictService through the WCF proxy that Mono's `svcutil` generates
// (ClientBase<PredictServicePortType>, data contracts in namespace tfsoap.predict.v1).
//
//   mono PredictDemoWcf.exe ENDPOINT IMAGES [--model NAME] [--fault-model NAME] [--timeout-ms N]
//        [--user U --password P [--auth basic|wsse]] [--ca CA.pem]
//
// Same steps and output lines as clients/java/src/PredictDemo.java. Two things Mono's svcutil
// leaves out are made up for here, without editing the generated file:
// - it imports no wsdl:fault, so the ServiceFault detail type and the operations' fault
//   contracts are added at run time (AddFaultContracts); without them Mono's WCF client fails
//   to read any fault with a detail (it expects ExceptionDetail);
// - it maps the optional <version> to a plain long that is always sent, so a call cannot leave
//   it out to mean "latest": this program sends the latest_version that ListModels reports.
// With --user/--password every call authenticates through ClientCredentials.UserName:
// --auth basic is HTTP Basic (BasicHttpSecurityMode.Transport over https,
// TransportCredentialOnly over http); --auth wsse is a WS-Security UsernameToken
// (TransportWithMessageCredential, https only). --ca trusts a private CA (TlsTrust).
using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.Serialization;
using System.ServiceModel;
using System.ServiceModel.Description;
using tfsoap.predict.v1;

namespace Tfsoap.Demo
{
    /// <summary>The ServiceFault detail element of every tfsoap fault.</summary>
    [DataContract(Name = "ServiceFault", Namespace = "urn:tfsoap:predict:v1")]
    public sealed class ServiceFault
    {
        [DataMember(Name = "code", Order = 0, IsRequired = true)] public string Code;
        [DataMember(Name = "message", Order = 1, IsRequired = true)] public string Message;
        [DataMember(Name = "request_id", Order = 2, IsRequired = true)] public string RequestId;
    }

    public static class PredictDemoWcf
    {
        const string Tns = "urn:tfsoap:predict:v1";

        public static void Main(string[] args)
        {
            Report.Exit(Run(args));  // not a plain return: see Report.Exit
        }

        static int Run(string[] args)
        {
            DemoOptions o = DemoOptions.Parse(args, "PredictDemoWcf.exe", "basic", "wsse");
            if (o == null)
                return Report.Usage;
            if (o.ClientCertPath != null) {
                // Mutual TLS is shown (and tested) with the ASMX demo only.
                Console.Error.WriteLine("PredictDemoWcf.exe: --client-cert: use PredictDemoAsmx.exe");
                return Report.Usage;
            }
            Matrix images;
            try {
                images = Matrix.Read(o.ImagesPath);
                if (o.CaPath != null)
                    TlsTrust.TrustCa(o.CaPath);
            } catch (Exception e) when (e is IOException || e is FormatException
                                        || e is System.Security.Cryptography.CryptographicException) {
                Console.WriteLine("ERROR input " + Report.OneLine(e.Message));
                return Report.Usage;
            }
            TimeSpan timeout = TimeSpan.FromMilliseconds(o.TimeoutMs);
            BasicHttpBinding binding = Binding(o);
            binding.MaxReceivedMessageSize = 64 * 1024 * 1024;
            binding.OpenTimeout = binding.SendTimeout = binding.ReceiveTimeout = binding.CloseTimeout = timeout;
            binding.ReaderQuotas.MaxArrayLength = 64 * 1024 * 1024;
            PredictServicePortTypeClient client;
            try {
                client = new PredictServicePortTypeClient(binding, new EndpointAddress(o.Endpoint));
            } catch (ArgumentException e) {
                // e.g. an http:// address with a binding that needs https
                Console.WriteLine("ERROR input " + Report.OneLine(e.Message));
                return Report.Usage;
            }
            if (o.Authenticated) {
                client.ClientCredentials.UserName.UserName = o.User;
                client.ClientCredentials.UserName.Password = o.Password;
            }
            AddFaultContracts(client.Endpoint.Contract);
            try {
                Demo(client, o.Model, o.FaultModel, images);
                client.Close();
                Console.WriteLine("DONE");
                return Report.Ok;
            } catch (FaultException<ServiceFault> e) {
                Console.WriteLine("ERROR fault " + e.Detail.Code + " " + Report.OneLine(e.Detail.Message));
                client.Abort();
                return Report.Fault;
            } catch (FaultException e) {
                Console.WriteLine("ERROR fault " + e.Code.Name + " " + Report.OneLine(e.Message));
                client.Abort();
                return Report.Fault;
            } catch (TimeoutException e) {
                client.Abort();
                return Report.TransportError("timeout", e);
            } catch (CommunicationException e) {
                client.Abort();
                return Report.TransportError(IsTimeout(e) ? "timeout" : "transport", e);
            } catch (System.Net.WebException e) {
                // Mono's WCF lets an HTTP 401 (no credentials sent) out unwrapped.
                client.Abort();
                return Report.TransportError("transport", e);
            } catch (NotImplementedException e) {
                // Mono 6.8's WCF has no message security: TransportWithMessageCredential
                // fails here, in SecurityBindingElement.CanBuildChannelFactory, before any
                // request is sent (and leaves the factory half-open: no Abort, it would throw).
                return Report.Unsupported(e);
            }
        }

        /// <summary>The binding for the options: no security, HTTP Basic, or a UsernameToken.</summary>
        static BasicHttpBinding Binding(DemoOptions o)
        {
            bool https = o.Endpoint.StartsWith("https:", StringComparison.OrdinalIgnoreCase);
            if (!o.Authenticated)
                return new BasicHttpBinding(https ? BasicHttpSecurityMode.Transport : BasicHttpSecurityMode.None);
            if (o.Auth == "wsse") {
                // UsernameToken (PasswordText) in a wsse:Security header, over https.
                var wsse = new BasicHttpBinding(BasicHttpSecurityMode.TransportWithMessageCredential);
                wsse.Security.Message.ClientCredentialType = BasicHttpMessageCredentialType.UserName;
                return wsse;
            }
            var basic = new BasicHttpBinding(https ? BasicHttpSecurityMode.Transport
                                                   : BasicHttpSecurityMode.TransportCredentialOnly);
            basic.Security.Transport.ClientCredentialType = HttpClientCredentialType.Basic;
            return basic;
        }

        /// <summary>Declare the ServiceFault detail on every operation, as the WSDL does.</summary>
        static void AddFaultContracts(ContractDescription contract)
        {
            foreach (OperationDescription op in contract.Operations) {
                var fault = new FaultDescription(Tns + "/" + op.Name + "/Fault/ServiceFault") {
                    DetailType = typeof(ServiceFault), Name = "ServiceFault", Namespace = Tns,
                };
                op.Faults.Add(fault);
            }
        }

        static bool IsTimeout(Exception e)
        {
            for (Exception c = e; c != null; c = c.InnerException) {
                if (c is TimeoutException)
                    return true;
                var web = c as System.Net.WebException;
                if (web != null && web.Status == System.Net.WebExceptionStatus.Timeout)
                    return true;
            }
            return false;
        }

        static void Demo(PredictServicePortTypeClient client, string model, string faultModel,
                         Matrix images)
        {
            ModelSummaryArray models = client.ListModels();
            var names = new List<string>();
            long version = 0;
            foreach (ModelSummary m in models) {
                names.Add(m.name);
                if (m.name == model)
                    version = m.latest_version;
            }
            Console.WriteLine("MODELS " + string.Join(" ", names));
            foreach (ModelSummary m in models)
                if (m.name == model)
                    Console.WriteLine("MODEL " + m.name + " " + m.latest_version + " " + m.state);

            ModelMetadata md = client.GetModelMetadata(model, version, null);
            Console.WriteLine("METADATA " + md.model_name + " " + md.version);
            foreach (TensorInfo t in md.inputs)
                Console.WriteLine("INPUT " + Describe(t));
            foreach (TensorInfo t in md.outputs)
                Console.WriteLine("OUTPUT " + Describe(t));
            string input = md.inputs[0].name;

            // output_encoding AUTO is the enum's default, which the proxy leaves out.
            PredictResult typed = client.Predict(model, version, Inputs(Typed(input, images)), null, OutputEncoding.AUTO, null);
            Report.Prediction("typed", typed.version, Outputs(typed));
            PredictResult packed = client.Predict(model, version, Inputs(Packed(input, images)), null, OutputEncoding.AUTO, null);
            Report.Prediction("packed", packed.version, Outputs(packed));

            try {
                client.Predict(faultModel, 1, Inputs(Typed(input, images)), null, OutputEncoding.AUTO, null);
                Console.WriteLine("NOFAULT " + faultModel + " answered");
            } catch (FaultException<ServiceFault> e) {
                Console.WriteLine("FAULT " + e.Detail.Code + " " + Report.OneLine(e.Detail.Message));
                Console.WriteLine("FAULTCODE " + e.Code.Name);
            } catch (FaultException e) {
                Console.WriteLine("UNTYPEDFAULT " + e.Code.Name + " " + Report.OneLine(e.Message));
            }
        }

        static TensorArray Inputs(params Tensor[] tensors)
        {
            var a = new TensorArray();
            a.AddRange(tensors);
            return a;
        }

        static Tensor Header(string name, Matrix m)
        {
            var shape = new longArray();
            shape.Add(m.Rows);
            shape.Add(m.Cols);
            return new Tensor { name = name, dtype = DataType.DT_FLOAT, shape = shape };
        }

        static Tensor Typed(string name, Matrix m)
        {
            Tensor t = Header(name, m);
            t.float_val = new floatArray();
            t.float_val.AddRange(m.Values);
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
                var o = new DemoOutput { Name = t.name, DType = t.dtype.ToString(), Shape = t.shape.ToArray() };
                if (t.tensor_content != null) {
                    o.WireForm = "tensor_content";
                    if (t.dtype == DataType.DT_FLOAT)
                        o.Floats = Wire.UnpackFloats(t.tensor_content);
                    else if (t.dtype == DataType.DT_INT64)
                        o.Longs = Wire.UnpackLongs(t.tensor_content);
                } else {
                    o.WireForm = t.float_val != null ? "float_val" : t.int64_val != null ? "int64_val" : "other";
                    o.Floats = t.float_val != null ? t.float_val.ToArray() : new float[0];
                    o.Longs = t.int64_val != null ? t.int64_val.ToArray() : new long[0];
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
    }
}
