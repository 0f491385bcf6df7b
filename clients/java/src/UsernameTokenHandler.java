import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.Base64;
import java.util.Collections;
import java.util.Set;

import javax.xml.namespace.QName;
import javax.xml.soap.SOAPElement;
import javax.xml.soap.SOAPEnvelope;
import javax.xml.soap.SOAPException;
import javax.xml.soap.SOAPHeader;
import javax.xml.soap.SOAPHeaderElement;
import javax.xml.ws.WebServiceException;
import javax.xml.ws.handler.MessageContext;
import javax.xml.ws.handler.soap.SOAPHandler;
import javax.xml.ws.handler.soap.SOAPMessageContext;

/**
 * Adds a WS-Security {@code UsernameToken} (OASIS UsernameToken Profile 1.0) to every request,
 * as a JAX-WS handler: {@code PasswordText}, or {@code PasswordDigest} =
 * Base64(SHA-1(nonce + created + password)) with a fresh nonce and {@code Created} each call.
 *
 * <p>JAX-WS has no UsernameToken of its own (Metro's WSIT or Apache CXF with WSS4J do); this
 * handler is what a plain JAX-WS client needs, in about sixty lines. The header carries
 * {@code mustUnderstand="1"}: a server that cannot check it must fault.
 */
public final class UsernameTokenHandler implements SOAPHandler<SOAPMessageContext> {

    static final String WSSE =
            "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
    static final String WSU =
            "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
    private static final String PROFILE =
            "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0";
    private static final String BASE64 = "http://docs.oasis-open.org/wss/2004/01/"
            + "oasis-200401-wss-soap-message-security-1.0#Base64Binary";
    private static final SecureRandom RANDOM = new SecureRandom();

    private final String user;
    private final String password;
    private final boolean digest;

    public UsernameTokenHandler(String user, String password, boolean digest) {
        this.user = user;
        this.password = password;
        this.digest = digest;
    }

    @Override
    public boolean handleMessage(SOAPMessageContext context) {
        if (!(Boolean) context.get(MessageContext.MESSAGE_OUTBOUND_PROPERTY)) {
            return true;
        }
        try {
            SOAPEnvelope envelope = context.getMessage().getSOAPPart().getEnvelope();
            SOAPHeader header = envelope.getHeader() != null ? envelope.getHeader()
                    : envelope.addHeader();
            SOAPHeaderElement security = header.addHeaderElement(
                    new QName(WSSE, "Security", "wsse"));
            security.setMustUnderstand(true);
            SOAPElement token = security.addChildElement("UsernameToken", "wsse");
            token.addChildElement("Username", "wsse").addTextNode(user);
            SOAPElement pw = token.addChildElement("Password", "wsse");
            if (digest) {
                byte[] nonce = new byte[16];
                RANDOM.nextBytes(nonce);
                String created = Instant.now().truncatedTo(ChronoUnit.SECONDS).toString();
                pw.setAttribute("Type", PROFILE + "#PasswordDigest");
                pw.addTextNode(digestOf(nonce, created, password));
                SOAPElement n = token.addChildElement("Nonce", "wsse");
                n.setAttribute("EncodingType", BASE64);
                n.addTextNode(Base64.getEncoder().encodeToString(nonce));
                token.addChildElement("Created", "wsu", WSU).addTextNode(created);
            } else {
                pw.setAttribute("Type", PROFILE + "#PasswordText");
                pw.addTextNode(password);
            }
            context.getMessage().saveChanges();
        } catch (SOAPException e) {
            throw new WebServiceException("cannot add the UsernameToken", e);
        }
        return true;
    }

    static String digestOf(byte[] nonce, String created, String password) {
        try {
            MessageDigest sha1 = MessageDigest.getInstance("SHA-1");
            sha1.update(nonce);
            sha1.update(created.getBytes(StandardCharsets.UTF_8));
            sha1.update(password.getBytes(StandardCharsets.UTF_8));
            return Base64.getEncoder().encodeToString(sha1.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public Set<QName> getHeaders() {
        return Collections.emptySet();
    }

    @Override
    public boolean handleFault(SOAPMessageContext context) {
        return true;
    }

    @Override
    public void close(MessageContext context) {
    }
}
