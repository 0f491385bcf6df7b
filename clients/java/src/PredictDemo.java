import java.io.File;
import java.io.IOException;
import java.net.MalformedURLException;
import java.net.SocketTimeoutException;
import java.net.URL;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import javax.xml.namespace.QName;
import javax.xml.ws.BindingProvider;
import javax.xml.ws.WebServiceException;
import javax.xml.ws.soap.SOAPFaultException;

import tfsoap.predict.v1.DataType;
import tfsoap.predict.v1.FloatArray;
import tfsoap.predict.v1.LongArray;
import tfsoap.predict.v1.ModelMetadata;
import tfsoap.predict.v1.ModelSummary;
import tfsoap.predict.v1.PredictResult;
import tfsoap.predict.v1.PredictService;
import tfsoap.predict.v1.PredictServicePortType;
import tfsoap.predict.v1.ServiceFault;
import tfsoap.predict.v1.ServiceFault_Exception;
import tfsoap.predict.v1.Tensor;
import tfsoap.predict.v1.TensorArray;
import tfsoap.predict.v1.TensorInfo;

/**
 * Calls a tfsoap PredictService through the JAX-WS stubs that wsimport generates from the WSDL.
 *
 * <p>Usage: {@code PredictDemo ENDPOINT WSDL IMAGES [--model NAME] [--fault-model NAME]
 * [--timeout-ms N] [--user U --password P [--auth basic|wsse|wsse-digest]]}
 *
 * <ul>
 *   <li>ENDPOINT: the service URL, for example {@code http://127.0.0.1:8080/} (it replaces the
 *       address written in the WSDL);
 *   <li>WSDL: where the JAX-WS runtime reads the WSDL: {@code http://host:8080/?wsdl}, a
 *       {@code file:} URL or a path (for example {@code wsdl/PredictService.wsdl});
 *   <li>IMAGES: a text file with the shape on the first line ({@code rows cols}) and then
 *       {@code rows * cols} float32 values, whitespace separated, row-major.
 * </ul>
 *
 * <p>It lists the models, reads the model's metadata, calls Predict once with typed values
 * ({@code float_val}) and once with {@code tensor_content} (little-endian bytes), and asks for
 * a model that does not exist ({@code --fault-model}: another one, for example a model the
 * caller may not call) to show the typed fault. Output is one fact per line, a keyword
 * first, for scripts and tests to read:
 *
 * <pre>
 * MODELS digits ...                     MODEL digits 1 AVAILABLE
 * METADATA digits 1                     INPUT images DT_FLOAT -1 64
 * OUTPUT probabilities DT_FLOAT -1 10   OUTPUT classes DT_INT64 -1
 * VERSION typed 1                       ENCODING typed probabilities=float_val classes=int64_val
 * CLASSES typed 0 1 2 ...               PROBS typed 10 10 0.99 0.001 ...
 * (the same three lines for "packed")
 * FAULT Client.ModelNotFound model 'no_such_model' is not served here
 * DONE
 * </pre>
 *
 * <p>With {@code --user} and {@code --password}, every call authenticates: {@code basic} (the
 * default) through {@code BindingProvider.USERNAME_PROPERTY}/{@code PASSWORD_PROPERTY}, which
 * the JAX-WS runtime sends as HTTP Basic on every request; {@code wsse} and {@code wsse-digest}
 * through {@link UsernameTokenHandler}. For an https ENDPOINT signed by a private CA, run java
 * with {@code -Djavax.net.ssl.trustStore=truststore.p12 -Djavax.net.ssl.trustStorePassword=...}
 * (a truststore made by {@code keytool -importcert} from the CA certificate). For mutual TLS
 * add {@code -Djavax.net.ssl.keyStore=client.p12 -Djavax.net.ssl.keyStorePassword=...
 * -Djavax.net.ssl.keyStoreType=PKCS12}: the JDK's default key manager offers that certificate
 * when the server asks for one.
 *
 * <p>A transport failure (server down, timeout, HTTP error) prints {@code ERROR transport ...}
 * or {@code ERROR timeout ...} and exits with 3; an unexpected fault prints {@code ERROR fault
 * CODE ...} and exits with 4; bad arguments exit with 2.
 */
public final class PredictDemo {

    private static final String TNS = "urn:tfsoap:predict:v1";
    private static final QName SERVICE = new QName(TNS, "PredictService");
    /** JAX-WS RI request properties (JDK 17 has no JAX-WS of its own: these are jaxws-rt's). */
    private static final String CONNECT_TIMEOUT = "com.sun.xml.ws.connect.timeout";
    private static final String REQUEST_TIMEOUT = "com.sun.xml.ws.request.timeout";

    private PredictDemo() {
    }

    public static void main(String[] args) {
        System.exit(run(args));
    }

    static int run(String[] args) {
        List<String> positional = new ArrayList<>();
        String model = "digits";
        String faultModel = "no_such_model";
        int timeoutMs = 30000;
        String user = null;
        String password = null;
        String auth = "basic";
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--model") && i + 1 < args.length) {
                model = args[++i];
            } else if (args[i].equals("--fault-model") && i + 1 < args.length) {
                faultModel = args[++i];
            } else if (args[i].equals("--user") && i + 1 < args.length) {
                user = args[++i];
            } else if (args[i].equals("--password") && i + 1 < args.length) {
                password = args[++i];
            } else if (args[i].equals("--auth") && i + 1 < args.length) {
                auth = args[++i];
            } else if (args[i].equals("--timeout-ms") && i + 1 < args.length) {
                timeoutMs = Integer.parseInt(args[++i]);
            } else {
                positional.add(args[i]);
            }
        }
        if (positional.size() != 3) {
            System.err.println("usage: PredictDemo ENDPOINT WSDL IMAGES [--model NAME] [--fault-model NAME] [--timeout-ms N]");
            return 2;
        }
        Matrix images;
        URL wsdl;
        try {
            images = Matrix.read(new File(positional.get(2)));
            wsdl = toUrl(positional.get(1));
        } catch (IOException | IllegalArgumentException e) {
            System.out.println("ERROR input " + oneLine(e.toString()));
            return 2;
        }
        try {
            PredictServicePortType port = connect(wsdl, positional.get(0), timeoutMs);
            if (user != null && password != null) {
                authenticate(port, user, password, auth);
            }
            demo(port, model, faultModel, images);
            System.out.println("DONE");
            return 0;
        } catch (ServiceFault_Exception e) {
            ServiceFault f = e.getFaultInfo();
            System.out.println("ERROR fault " + f.getCode() + " " + oneLine(f.getMessage()));
            return 4;
        } catch (SOAPFaultException e) {
            // A fault without the declared detail: still a clean report, never a stack trace.
            System.out.println("ERROR fault - " + oneLine(e.getMessage()));
            return 4;
        } catch (WebServiceException e) {
            String kind = causedBy(e, SocketTimeoutException.class) ? "timeout" : "transport";
            System.out.println("ERROR " + kind + " " + oneLine(describe(e)));
            return 3;
        }
    }

    /** A port for {@code endpoint}, with the WSDL read from {@code wsdl}. */
    static PredictServicePortType connect(URL wsdl, String endpoint, int timeoutMs) {
        PredictServicePortType port = new PredictService(wsdl, SERVICE).getPredictServiceSoap();
        Map<String, Object> ctx = ((BindingProvider) port).getRequestContext();
        ctx.put(BindingProvider.ENDPOINT_ADDRESS_PROPERTY, endpoint);
        ctx.put(CONNECT_TIMEOUT, timeoutMs);
        ctx.put(REQUEST_TIMEOUT, timeoutMs);
        return port;
    }

    /** Every call on {@code port} authenticates as {@code user}: HTTP Basic or a UsernameToken. */
    static void authenticate(PredictServicePortType port, String user, String password,
                             String auth) {
        BindingProvider bp = (BindingProvider) port;
        if (auth.equals("basic")) {
            bp.getRequestContext().put(BindingProvider.USERNAME_PROPERTY, user);
            bp.getRequestContext().put(BindingProvider.PASSWORD_PROPERTY, password);
            return;
        }
        if (!auth.equals("wsse") && !auth.equals("wsse-digest")) {
            throw new IllegalArgumentException("--auth must be basic, wsse or wsse-digest");
        }
        @SuppressWarnings("rawtypes")
        List<javax.xml.ws.handler.Handler> chain = bp.getBinding().getHandlerChain();
        chain.add(new UsernameTokenHandler(user, password, auth.equals("wsse-digest")));
        bp.getBinding().setHandlerChain(chain);
    }

    static void demo(PredictServicePortType port, String model, String faultModel,
                     Matrix images)
            throws ServiceFault_Exception {
        List<ModelSummary> models = port.listModels().getModelSummary();
        StringBuilder names = new StringBuilder("MODELS");
        for (ModelSummary m : models) {
            names.append(' ').append(m.getName());
        }
        System.out.println(names);
        for (ModelSummary m : models) {
            if (m.getName().equals(model)) {
                System.out.println("MODEL " + m.getName() + " " + m.getLatestVersion() + " "
                        + m.getState().value());
            }
        }

        ModelMetadata md = port.getModelMetadata(model, null, null);  // nulls: the latest version
        System.out.println("METADATA " + md.getModelName() + " " + md.getVersion());
        for (TensorInfo t : md.getInputs().getTensorInfo()) {
            System.out.println("INPUT " + describe(t));
        }
        for (TensorInfo t : md.getOutputs().getTensorInfo()) {
            System.out.println("OUTPUT " + describe(t));
        }
        String inputName = md.getInputs().getTensorInfo().get(0).getName();

        report("typed", port.predict(model, null, inputs(typed(inputName, images)), null, null, null));
        report("packed", port.predict(model, null, inputs(packed(inputName, images)), null, null, null));

        try {
            port.predict(faultModel, null, inputs(typed(inputName, images)), null, null, null);
            System.out.println("NOFAULT " + faultModel + " answered");
        } catch (ServiceFault_Exception e) {
            ServiceFault f = e.getFaultInfo();
            System.out.println("FAULT " + f.getCode() + " " + oneLine(f.getMessage()));
        }
    }

    /** A float tensor with its values as {@code <float_val><float>...}. */
    static Tensor typed(String name, Matrix m) {
        Tensor t = header(name, m);
        FloatArray values = new FloatArray();
        for (float v : m.values) {
            values.getFloat().add(v);
        }
        t.setFloatVal(values);
        return t;
    }

    /** A float tensor with its values as {@code tensor_content}: little-endian float32 bytes. */
    static Tensor packed(String name, Matrix m) {
        Tensor t = header(name, m);
        ByteBuffer bytes = ByteBuffer.allocate(4 * m.values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : m.values) {
            bytes.putFloat(v);
        }
        t.setTensorContent(bytes.array());
        return t;
    }

    private static Tensor header(String name, Matrix m) {
        Tensor t = new Tensor();
        t.setName(name);
        t.setDtype(DataType.DT_FLOAT);
        LongArray shape = new LongArray();
        shape.getLong().add((long) m.rows);
        shape.getLong().add((long) m.cols);
        t.setShape(shape);
        return t;
    }

    private static TensorArray inputs(Tensor... tensors) {
        TensorArray a = new TensorArray();
        for (Tensor t : tensors) {
            a.getTensor().add(t);
        }
        return a;
    }

    private static void report(String mode, PredictResult r) {
        System.out.println("VERSION " + mode + " " + r.getVersion());
        StringBuilder enc = new StringBuilder("ENCODING " + mode);
        for (Tensor t : r.getOutputs().getTensor()) {
            enc.append(' ').append(t.getName()).append('=').append(wireForm(t));
        }
        System.out.println(enc);
        for (Tensor t : r.getOutputs().getTensor()) {
            List<Long> shape = t.getShape().getLong();
            StringBuilder line = new StringBuilder();
            // bindings.xml keeps the contract's names: DataType.DT_INT64, not JAXB's DT_INT_64.
            if (t.getDtype() == DataType.DT_INT64) {
                line.append("CLASSES ").append(mode);
                for (long v : longs(t)) {
                    line.append(' ').append(v);
                }
            } else if (t.getDtype() == DataType.DT_FLOAT) {
                line.append("PROBS ").append(mode);
                for (long d : shape) {
                    line.append(' ').append(d);
                }
                for (float v : floats(t)) {
                    line.append(' ').append(Float.toString(v));
                }
            } else {
                line.append("SKIP ").append(mode).append(' ').append(t.getName());
            }
            System.out.println(line);
        }
    }

    private static String wireForm(Tensor t) {
        if (t.getTensorContent() != null) {
            return "tensor_content";
        }
        if (t.getFloatVal() != null) {
            return "float_val";
        }
        if (t.getInt64Val() != null) {
            return "int64_val";
        }
        return "other";
    }

    /** The values of a DT_FLOAT tensor, whichever way the server sent them. */
    static float[] floats(Tensor t) {
        if (t.getTensorContent() != null) {
            ByteBuffer b = ByteBuffer.wrap(t.getTensorContent()).order(ByteOrder.LITTLE_ENDIAN);
            float[] out = new float[b.remaining() / 4];
            b.asFloatBuffer().get(out);
            return out;
        }
        List<Float> vals = t.getFloatVal() == null ? List.of() : t.getFloatVal().getFloat();
        float[] out = new float[vals.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = vals.get(i);
        }
        return out;
    }

    /** The values of a DT_INT64 tensor, whichever way the server sent them. */
    static long[] longs(Tensor t) {
        if (t.getTensorContent() != null) {
            ByteBuffer b = ByteBuffer.wrap(t.getTensorContent()).order(ByteOrder.LITTLE_ENDIAN);
            long[] out = new long[b.remaining() / 8];
            b.asLongBuffer().get(out);
            return out;
        }
        List<Long> vals = t.getInt64Val() == null ? List.of() : t.getInt64Val().getLong();
        long[] out = new long[vals.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = vals.get(i);
        }
        return out;
    }

    private static String describe(TensorInfo t) {
        StringBuilder s = new StringBuilder(t.getName() + " " + t.getDtype().value());
        if (t.isRankKnown() && t.getShape() != null) {
            for (long d : t.getShape().getLong()) {
                s.append(' ').append(d);
            }
        } else {
            s.append(" ?");
        }
        return s.toString();
    }

    private static String describe(Throwable e) {
        StringBuilder s = new StringBuilder(e.getClass().getSimpleName() + ": " + e.getMessage());
        for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
            s.append(" <- ").append(c.getClass().getSimpleName()).append(": ").append(c.getMessage());
        }
        return s.toString();
    }

    private static boolean causedBy(Throwable e, Class<? extends Throwable> type) {
        for (Throwable c = e; c != null; c = c.getCause()) {
            if (type.isInstance(c)) {
                return true;
            }
            if (c.getCause() == c) {
                break;
            }
        }
        return false;
    }

    private static String oneLine(String s) {
        return s == null ? "" : s.replaceAll("\\s+", " ").trim();
    }

    private static URL toUrl(String location) throws MalformedURLException {
        if (location.matches("^[a-zA-Z][a-zA-Z0-9+.-]*:.*") && !location.matches("^[a-zA-Z]:\\\\.*")) {
            return new URL(location);
        }
        return new File(location).toURI().toURL();
    }

    /** A float32 matrix read from the demo's text format (shape line, then values). */
    static final class Matrix {
        final int rows;
        final int cols;
        final float[] values;

        private Matrix(int rows, int cols, float[] values) {
            this.rows = rows;
            this.cols = cols;
            this.values = values;
        }

        static Matrix read(File file) throws IOException {
            List<String> lines = Files.readAllLines(file.toPath(), StandardCharsets.US_ASCII);
            if (lines.isEmpty()) {
                throw new IllegalArgumentException(file + " is empty");
            }
            String[] shape = lines.get(0).trim().split("\\s+");
            if (shape.length != 2) {
                throw new IllegalArgumentException(file + ": first line must be 'rows cols'");
            }
            int rows = Integer.parseInt(shape[0]);
            int cols = Integer.parseInt(shape[1]);
            float[] values = new float[rows * cols];
            int n = 0;
            for (String line : lines.subList(1, lines.size())) {
                for (String tok : line.trim().split("\\s+")) {
                    if (tok.isEmpty()) {
                        continue;
                    }
                    if (n == values.length) {
                        throw new IllegalArgumentException(file + ": more than rows*cols values");
                    }
                    values[n++] = Float.parseFloat(tok);
                }
            }
            if (n != values.length) {
                throw new IllegalArgumentException(file + ": " + n + " values for shape " + rows
                        + "x" + cols);
            }
            return new Matrix(rows, cols, values);
        }
    }
}
