// What the two C# demos share: arguments, the images file, little-endian packing, and the
// machine-readable output lines. The proxies (ASMX from `wsdl`, WCF from `svcutil`) generate
// different classes for the same Tensor, so each program converts its outputs to DemoOutput.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Runtime.InteropServices;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Mono.Security.Interface;

namespace Tfsoap.Demo
{
    /// <summary>Command line: ENDPOINT IMAGES [--model NAME] [--fault-model NAME]
    /// [--timeout-ms N] [--user U --password P [--auth MODE] [--no-preauthenticate]]
    /// [--ca ca.pem] [--client-cert client.p12 [--client-cert-password P]].</summary>
    public sealed class DemoOptions
    {
        public const string Usage = " ENDPOINT IMAGES [--model NAME] [--fault-model NAME]"
            + " [--timeout-ms N] [--user U --password P [--auth MODE] [--no-preauthenticate]]"
            + " [--ca CA.pem] [--client-cert CLIENT.p12 [--client-cert-password P]]";

        public string Endpoint;
        public string ImagesPath;
        public string Model = "digits";
        /// <summary>The model of the last call, which is expected to fail with a typed fault
        /// (by default one that does not exist; a model the caller may not call works too).
        /// </summary>
        public string FaultModel = "no_such_model";
        public int TimeoutMs = 30000;
        /// <summary>With Password: every call authenticates as this user.</summary>
        public string User;
        public string Password;
        /// <summary>basic (HTTP Basic) or wsse (WS-Security UsernameToken, WCF only).</summary>
        public string Auth = "basic";
        /// <summary>ASMX: send Basic credentials with the first request (false: wait for the
        /// server's 401 challenge, then resend).</summary>
        public bool PreAuthenticate = true;
        /// <summary>A PEM file with the CA certificate that signed the server's (https).</summary>
        public string CaPath;
        /// <summary>A PKCS#12 file with the client certificate and its key (mutual TLS).</summary>
        public string ClientCertPath;
        public string ClientCertPassword = "";

        public bool Authenticated { get { return User != null && Password != null; } }

        public static DemoOptions Parse(string[] args, string program, params string[] authModes)
        {
            var o = new DemoOptions();
            var positional = new List<string>();
            for (int i = 0; i < args.Length; i++) {
                if (args[i] == "--model" && i + 1 < args.Length)
                    o.Model = args[++i];
                else if (args[i] == "--fault-model" && i + 1 < args.Length)
                    o.FaultModel = args[++i];
                else if (args[i] == "--client-cert" && i + 1 < args.Length)
                    o.ClientCertPath = args[++i];
                else if (args[i] == "--client-cert-password" && i + 1 < args.Length)
                    o.ClientCertPassword = args[++i];
                else if (args[i] == "--timeout-ms" && i + 1 < args.Length)
                    o.TimeoutMs = int.Parse(args[++i], CultureInfo.InvariantCulture);
                else if (args[i] == "--user" && i + 1 < args.Length)
                    o.User = args[++i];
                else if (args[i] == "--password" && i + 1 < args.Length)
                    o.Password = args[++i];
                else if (args[i] == "--auth" && i + 1 < args.Length)
                    o.Auth = args[++i];
                else if (args[i] == "--ca" && i + 1 < args.Length)
                    o.CaPath = args[++i];
                else if (args[i] == "--no-preauthenticate")
                    o.PreAuthenticate = false;
                else
                    positional.Add(args[i]);
            }
            if (positional.Count != 2 || Array.IndexOf(authModes, o.Auth) < 0) {
                Console.Error.WriteLine("usage: " + program + Usage
                                        + " (--auth: " + string.Join(", ", authModes) + ")");
                return null;
            }
            o.Endpoint = positional[0];
            o.ImagesPath = positional[1];
            return o;
        }
    }

    /// <summary>Trust one private CA for https, on top of the system's roots.
    /// Both proxies send through HttpWebRequest, whose TLS on Mono 6.8 is BoringSSL ("btls"):
    /// the CA goes in as a trust anchor of the default TLS settings, and btls itself then
    /// checks the whole chain (signatures, validity, key usage) and the host name, as it does
    /// for a public CA. Not the usual .NET Framework recipe, a ServicePointManager callback
    /// that builds an X509Chain with the CA in ExtraStore: Mono's managed X509Chain cannot read
    /// EC keys ("Cannot decode public key from unknown OID '1.2.840.10045.2.1'", measured on
    /// Mono 6.8 with the tests' P-256 certificates), so that callback could only accept a
    /// chain it has not verified, which this demo will not do.</summary>
    public static class TlsTrust
    {
        public static void TrustCa(string caPemPath)
        {
            X509Certificate2 ca = ReadPem(caPemPath);
            MonoTlsSettings settings = MonoTlsSettings.CopyDefaultSettings();
            settings.TrustAnchors = new X509CertificateCollection { ca };
            MonoTlsSettings.DefaultSettings = settings;
        }

        /// <summary>The first certificate of a PEM file (DER between the BEGIN/END lines).</summary>
        public static X509Certificate2 ReadPem(string path)
        {
            const string Begin = "-----BEGIN CERTIFICATE-----", End = "-----END CERTIFICATE-----";
            string text = File.ReadAllText(path, Encoding.ASCII);
            int b = text.IndexOf(Begin, StringComparison.Ordinal);
            int e = b < 0 ? -1 : text.IndexOf(End, b, StringComparison.Ordinal);
            if (b < 0 || e < 0)
                throw new FormatException(path + ": no PEM certificate");
            string base64 = text.Substring(b + Begin.Length, e - b - Begin.Length);
            return new X509Certificate2(Convert.FromBase64String(base64));
        }
    }

    /// <summary>A float32 matrix in the demo's text format: "rows cols", then the values.</summary>
    public sealed class Matrix
    {
        public readonly int Rows;
        public readonly int Cols;
        public readonly float[] Values;

        Matrix(int rows, int cols, float[] values)
        {
            Rows = rows;
            Cols = cols;
            Values = values;
        }

        public static Matrix Read(string path)
        {
            string[] lines = File.ReadAllLines(path, Encoding.ASCII);
            if (lines.Length == 0)
                throw new FormatException(path + " is empty");
            string[] shape = lines[0].Trim().Split((char[]) null, StringSplitOptions.RemoveEmptyEntries);
            if (shape.Length != 2)
                throw new FormatException(path + ": first line must be 'rows cols'");
            int rows = int.Parse(shape[0], CultureInfo.InvariantCulture);
            int cols = int.Parse(shape[1], CultureInfo.InvariantCulture);
            var values = new float[rows * cols];
            int n = 0;
            for (int i = 1; i < lines.Length; i++) {
                foreach (string tok in lines[i].Split((char[]) null, StringSplitOptions.RemoveEmptyEntries)) {
                    if (n == values.Length)
                        throw new FormatException(path + ": more than rows*cols values");
                    values[n++] = float.Parse(tok, NumberStyles.Float, CultureInfo.InvariantCulture);
                }
            }
            if (n != values.Length)
                throw new FormatException(path + ": " + n + " values for shape " + rows + "x" + cols);
            return new Matrix(rows, cols, values);
        }
    }

    /// <summary>One output tensor, decoded from whichever wire form the server used.</summary>
    public sealed class DemoOutput
    {
        public string Name;
        public string DType;
        public long[] Shape;
        public string WireForm;
        public float[] Floats;
        public long[] Longs;
    }

    public static class Wire
    {
        /// <summary>tensor_content: the values as little-endian float32 bytes, row-major.</summary>
        public static byte[] PackFloats(float[] values)
        {
            var bytes = new byte[values.Length * 4];
            for (int i = 0; i < values.Length; i++) {
                byte[] b = BitConverter.GetBytes(values[i]);
                if (!BitConverter.IsLittleEndian)
                    Array.Reverse(b);
                Buffer.BlockCopy(b, 0, bytes, i * 4, 4);
            }
            return bytes;
        }

        public static float[] UnpackFloats(byte[] bytes)
        {
            var values = new float[bytes.Length / 4];
            var b = new byte[4];
            for (int i = 0; i < values.Length; i++) {
                Buffer.BlockCopy(bytes, i * 4, b, 0, 4);
                if (!BitConverter.IsLittleEndian)
                    Array.Reverse(b);
                values[i] = BitConverter.ToSingle(b, 0);
            }
            return values;
        }

        public static long[] UnpackLongs(byte[] bytes)
        {
            var values = new long[bytes.Length / 8];
            var b = new byte[8];
            for (int i = 0; i < values.Length; i++) {
                Buffer.BlockCopy(bytes, i * 8, b, 0, 8);
                if (!BitConverter.IsLittleEndian)
                    Array.Reverse(b);
                values[i] = BitConverter.ToInt64(b, 0);
            }
            return values;
        }
    }

    /// <summary>The output lines (one fact per line, keyword first) and exit codes.</summary>
    public static class Report
    {
        public const int Ok = 0, Usage = 2, Transport = 3, Fault = 4, NotSupported = 5;

        [DllImport("libc", EntryPoint = "_exit")]
        static extern void UnixExit(int code);

        /// <summary>End the process with <paramref name="code"/>, now.
        /// After an HTTP request timed out, Mono 6.8 closes the socket on a thread-pool thread;
        /// when that close races with the runtime's shutdown, the process never exits (measured:
        /// about one run in twenty, ASMX and WCF alike). So on Mono on Unix the demo flushes its
        /// output and leaves with _exit, skipping the shutdown; elsewhere Environment.Exit.</summary>
        public static void Exit(int code)
        {
            Console.Out.Flush();
            Console.Error.Flush();
            bool unix = Environment.OSVersion.Platform == PlatformID.Unix;
            if (unix && Type.GetType("Mono.Runtime") != null)
                UnixExit(code);
            Environment.Exit(code);
        }

        public static void Line(string keyword, params object[] parts)
        {
            var sb = new StringBuilder(keyword);
            foreach (object p in parts)
                sb.Append(' ').Append(p);
            Console.WriteLine(sb.ToString());
        }

        public static string OneLine(string s)
        {
            if (s == null)
                return "";
            return string.Join(" ", s.Split((char[]) null, StringSplitOptions.RemoveEmptyEntries));
        }

        public static string Format(float v)
        {
            return v.ToString("R", CultureInfo.InvariantCulture);
        }

        public static void Prediction(string mode, long version, IList<DemoOutput> outputs)
        {
            Console.WriteLine("VERSION " + mode + " " + version);
            var enc = new StringBuilder("ENCODING " + mode);
            foreach (DemoOutput o in outputs)
                enc.Append(' ').Append(o.Name).Append('=').Append(o.WireForm);
            Console.WriteLine(enc.ToString());
            foreach (DemoOutput o in outputs) {
                var line = new StringBuilder();
                if (o.DType == "DT_INT64") {
                    line.Append("CLASSES ").Append(mode);
                    foreach (long v in o.Longs)
                        line.Append(' ').Append(v.ToString(CultureInfo.InvariantCulture));
                } else if (o.DType == "DT_FLOAT") {
                    line.Append("PROBS ").Append(mode);
                    foreach (long d in o.Shape)
                        line.Append(' ').Append(d.ToString(CultureInfo.InvariantCulture));
                    foreach (float v in o.Floats)
                        line.Append(' ').Append(Format(v));
                } else {
                    line.Append("SKIP ").Append(mode).Append(' ').Append(o.Name);
                }
                Console.WriteLine(line.ToString());
            }
        }

        /// <summary>Something the runtime does not implement, as one line: the exception and
        /// the framework method that threw it.</summary>
        public static int Unsupported(Exception e)
        {
            string where = e.TargetSite == null ? "?"
                : e.TargetSite.DeclaringType.FullName + "." + e.TargetSite.Name;
            Console.WriteLine("ERROR unsupported " + e.GetType().Name + ": " + OneLine(e.Message)
                              + " at " + where);
            return NotSupported;
        }

        /// <summary>A transport failure as one line: the exception chain, no stack trace.</summary>
        public static int TransportError(string kind, Exception e)
        {
            var sb = new StringBuilder("ERROR " + kind + " ");
            sb.Append(e.GetType().Name).Append(": ").Append(OneLine(e.Message));
            for (Exception c = e.InnerException; c != null; c = c.InnerException)
                sb.Append(" <- ").Append(c.GetType().Name).Append(": ").Append(OneLine(c.Message));
            Console.WriteLine(sb.ToString());
            return Transport;
        }
    }
}
