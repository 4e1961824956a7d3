// idnode's check with CAICT's ID-SDK 2.0.3 (conformance/national-sdk/run-caict). Our own code,
// written against the SDK's public API as its README and ID-SDK-DEMO use it
// (ChannelManageServiceImpl.generateChannel -> IIDManageServiceChannel: lookupIdentifier, login,
// createIdentifier, addIdentifierValues, modifyIdentifierValues, removeIdentifierValues,
// deleteIdentifier); it needs CAICT's prebuilt jar and its libraries on the class path, which are
// not part of this repository.
//
// Usage:
//   java CaictSdkCheck keys KEY_DIR
//     Writes rsa.pem (an RSA key as PKCS#8 PEM, the form the SDK's login reads from a .pem file),
//     sm2.pem (an SM2 key, the same form) and values.json: HS_PUBKEY values at 301 (the RSA key),
//     302 (KEY_DIR/keygen.bin.pub, written before by `idnode admin keygen`) and 303 (the SM2 key,
//     SM2_PUB_KEY), each with an HS_ADMIN value at 101-103 naming it, for `idnode id put --merge`.
//   java CaictSdkCheck admin HOST PORT SECRET_FILE KEY_DIR
//     Anonymous resolution; as 0.NA/88.100: LOGIN_ID_SYSTEM (2001) with its secret (300, through
//     the SDK's engine with our HS_SECKEY AbstractAuthentication: the SDK has none), the RSA key
//     in rsa.pem (301; request digest MD5 as the demo asks, and SHA-256) and keygen.bin (302, the
//     SDK's reader of Handle's binary key files); after each login: create, add, modify, remove a
//     value, delete, each checked by resolving on an anonymous channel. A wrong secret is refused;
//     the SM2 key and the password login (2000) are tried and reported.
//   java CaictSdkCheck quota HOST PORT ADMIN SECRET_FILE
//     On a node with [quota] identifiers = 1: the second create under ADMIN's prefix is an error
//     the SDK reports with idnode's message, within seconds.
// Prints one "ok"/"FAIL" line per check and "N passed, M failed"; exits 1 on failure.

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.SecureRandom;
import java.security.interfaces.RSAPublicKey;
import java.security.spec.ECGenParameterSpec;
import java.util.Base64;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

import cn.ac.caict.iiiiot.id.client.core.BaseRequest;
import cn.ac.caict.iiiiot.id.client.core.BaseResponse;
import cn.ac.caict.iiiiot.id.client.core.ChallengeResponse;
import cn.ac.caict.iiiiot.id.client.core.ErrorResponse;
import cn.ac.caict.iiiiot.id.client.core.IdentifierException;
import cn.ac.caict.iiiiot.id.client.core.LoginIDSystemRequest;
import cn.ac.caict.iiiiot.id.client.core.ResolutionRequest;
import cn.ac.caict.iiiiot.id.client.core.ResolutionResponse;
import cn.ac.caict.iiiiot.id.client.data.IdentifierValue;
import cn.ac.caict.iiiiot.id.client.data.MsgSettings;
import cn.ac.caict.iiiiot.id.client.security.AbstractAuthentication;
import cn.ac.caict.iiiiot.id.client.service.IChannelManageService;
import cn.ac.caict.iiiiot.id.client.service.IIDManageServiceChannel;
import cn.ac.caict.iiiiot.id.client.service.impl.ChannelManageServiceImpl;
import cn.ac.caict.iiiiot.id.client.service.impl.IDManageServiceChannelImpl;
import cn.ac.caict.iiiiot.id.client.utils.Util;
import org.bouncycastle.jce.provider.BouncyCastleProvider;

public class CaictSdkCheck {
    private static final String PREFIX_RECORD = "0.NA/88.100";
    /** The longest an SDK call may take: the SDK has no timeout of its own on TCP (it blocks in a
     * socket read), so a hang would otherwise stop the check. */
    private static final int CALL_SECONDS = 20;
    private static final ExecutorService CALLS = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r);
        t.setDaemon(true);
        return t;
    });
    private static int passed = 0;
    private static int failed = 0;
    private static String host;
    private static int port;

    private interface Check {
        String run() throws Exception;
    }

    private interface Call<T> {
        T run() throws Exception;
    }

    /** Runs one check: it returns a detail line on success and throws on failure. */
    private static void check(String name, Check check) {
        try {
            String detail = check.run();
            System.out.println("ok   " + name + (detail == null ? "" : ": " + detail));
            passed++;
        } catch (Throwable e) {
            System.out.println("FAIL " + name + ": " + describe(e));
            if (Boolean.getBoolean("trace")) e.printStackTrace(System.out);
            failed++;
        }
    }

    private static void require(boolean condition, String what) {
        if (!condition) throw new AssertionError(what);
    }

    /** An SDK call bounded by CALL_SECONDS: a hang is a failure, not a stuck check. */
    private static <T> T bounded(String what, Call<T> call) throws Exception {
        Future<T> f = CALLS.submit(call::run);
        try {
            return f.get(CALL_SECONDS, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            f.cancel(true);
            throw new AssertionError(what + ": no answer within " + CALL_SECONDS + " s (the SDK hangs)");
        } catch (java.util.concurrent.ExecutionException e) {
            if (e.getCause() instanceof Exception) throw (Exception) e.getCause();
            throw e;
        }
    }

    private static String describe(Throwable e) {
        if (e instanceof IdentifierException) {
            return "IdentifierException " + ((IdentifierException) e).getExceptionCode() + " \"" + e.getMessage() + "\""
                + (e.getCause() != null ? " caused by " + describe(e.getCause()) : "");
        }
        return e.toString() + (e.getCause() != null && e.getCause() != e ? " caused by " + describe(e.getCause()) : "");
    }

    /** A response as the demo prints it: the code, and an error's message. */
    private static String describe(BaseResponse r) {
        if (r == null) return "no response";
        if (r instanceof ErrorResponse) {
            return "ErrorResponse " + r.responseCode + " \"" + text(((ErrorResponse) r).message) + "\"";
        }
        return r.getClass().getSimpleName() + " " + r.responseCode;
    }

    private static String text(byte[] b) {
        return b == null ? "" : new String(b, StandardCharsets.UTF_8);
    }

    private static String firstLine(String file) throws IOException {
        return new String(Files.readAllBytes(Paths.get(file)), StandardCharsets.UTF_8).split("\n")[0].trim();
    }

    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "keys":
                keys(Paths.get(args[1]));
                return;
            case "admin":
                host = args[1];
                port = Integer.parseInt(args[2]);
                admin(firstLine(args[3]), Paths.get(args[4]));
                break;
            case "quota":
                host = args[1];
                port = Integer.parseInt(args[2]);
                quota(args[3], firstLine(args[4]));
                break;
            default:
                throw new IllegalArgumentException("mode: keys, admin or quota");
        }
        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }

    //------------ keys ------------------------------------------------------------------------

    private static void keys(Path out) throws Exception {
        KeyPairGenerator rsaGen = KeyPairGenerator.getInstance("RSA");
        rsaGen.initialize(2048);
        KeyPair rsa = rsaGen.generateKeyPair();
        // An SM2 key as hutool's SecureUtil.generateKeyPair("SM2") makes one: EC on sm2p256v1.
        KeyPairGenerator sm2Gen = KeyPairGenerator.getInstance("EC", new BouncyCastleProvider());
        sm2Gen.initialize(new ECGenParameterSpec("sm2p256v1"));
        KeyPair sm2 = sm2Gen.generateKeyPair();
        Files.write(out.resolve("rsa.pem"), pkcs8Pem(rsa.getPrivate().getEncoded()));
        Files.write(out.resolve("sm2.pem"), pkcs8Pem(sm2.getPrivate().getEncoded()));
        byte[][] keys = {
            rsaPublicKey((RSAPublicKey) rsa.getPublic()),
            Files.readAllBytes(out.resolve("keygen.bin.pub")),
            sm2PublicKey(sm2.getPublic().getEncoded()),
        };
        StringBuilder json = new StringBuilder("[");
        for (int i = 0; i < keys.length; i++) {
            json.append(String.format("{\"index\": %d, \"type\": \"HS_PUBKEY\", \"data\": {\"format\": \"base64\", \"value\": \"%s\"}},%n",
                301 + i, Base64.getEncoder().encodeToString(keys[i])));
            json.append(String.format("{\"index\": %d, \"type\": \"HS_ADMIN\", \"data\": {\"format\": \"admin\", \"value\": "
                + "{\"handle\": \"%s\", \"index\": %d, \"permissions\": \"111111111111\"}}},%n", 101 + i, PREFIX_RECORD, 301 + i));
        }
        json.setLength(json.length() - 2);
        json.append("]\n");
        Files.write(out.resolve("values.json"), json.toString().getBytes(StandardCharsets.UTF_8));
    }

    private static byte[] pkcs8Pem(byte[] der) {
        String b64 = Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(der);
        return ("-----BEGIN PRIVATE KEY-----\n" + b64 + "\n-----END PRIVATE KEY-----\n").getBytes(StandardCharsets.US_ASCII);
    }

    /** Handle's HS_PUBKEY encoding of an RSA key, as the SDK's Util.getPublicKeyFromBytes reads it. */
    private static byte[] rsaPublicKey(RSAPublicKey key) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        DataOutputStream d = new DataOutputStream(b);
        writeBytes(d, "RSA_PUB_KEY".getBytes(StandardCharsets.US_ASCII));
        d.writeShort(0);
        writeBytes(d, key.getPublicExponent().toByteArray());
        writeBytes(d, key.getModulus().toByteArray());
        return b.toByteArray();
    }

    /** Handle's encoding with type SM2_PUB_KEY around the key's DER, a form idnode accepts. */
    private static byte[] sm2PublicKey(byte[] spki) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        DataOutputStream d = new DataOutputStream(b);
        writeBytes(d, "SM2_PUB_KEY".getBytes(StandardCharsets.US_ASCII));
        d.writeShort(0);
        writeBytes(d, spki);
        return b.toByteArray();
    }

    private static void writeBytes(DataOutputStream d, byte[] b) throws IOException {
        d.writeInt(b.length);
        d.write(b);
    }

    //------------ channels --------------------------------------------------------------------

    private static final IChannelManageService CHANNELS = new ChannelManageServiceImpl();

    /** A channel as the demo makes one: a TCP connection to the node (the SDK asks it for its
     * site right away, on that connection). */
    private static IIDManageServiceChannel channel() throws Exception {
        return bounded("generateChannel", () -> CHANNELS.generateChannel(host, port, "TCP"));
    }

    private static BaseResponse lookup(IIDManageServiceChannel c, String id) throws Exception {
        return bounded("lookupIdentifier " + id, () -> c.lookupIdentifier(id, null, null, new MsgSettings()));
    }

    private static IdentifierValue[] values(IIDManageServiceChannel c, String id) throws Exception {
        BaseResponse r = lookup(c, id);
        require(r instanceof ResolutionResponse && r.responseCode == 1, id + " resolves, got " + describe(r));
        return ((ResolutionResponse) r).getAllIDValues();
    }

    private static IdentifierValue byIndex(IdentifierValue[] vs, int index) {
        for (IdentifierValue v : vs) if (v.getIndex() == index) return v;
        return null;
    }

    private static IdentifierValue byType(IdentifierValue[] vs, String type) {
        for (IdentifierValue v : vs) if (text(v.getType()).equals(type)) return v;
        return null;
    }

    private static boolean missing(IIDManageServiceChannel c, String id) throws Exception {
        BaseResponse r = lookup(c, id);
        return r instanceof ErrorResponse && r.responseCode == 100;
    }

    private static void succeeded(String what, BaseResponse r) {
        require(r != null && r.responseCode == 1, what + ": success, got " + describe(r));
    }

    //------------ HS_SECKEY -------------------------------------------------------------------

    /** The SDK authenticates only with key pairs (PubKeyAuthentication). An application with a
     * secret key supplies its own AbstractAuthentication, as this one: CNRI's 2.7+ answer,
     * 0x22 PBKDF2-HMAC-SHA1 (salt, 10,000 iterations, 160 bits), then HMAC-SHA1 of
     * nonce || request digest under the derived key. */
    private static final class SecretKeyAuthentication extends AbstractAuthentication {
        private final byte[] identifier;
        private final int index;
        private final byte[] secret;

        SecretKeyAuthentication(String identifier, int index, byte[] secret) {
            this.identifier = Util.encodeString(identifier);
            this.index = index;
            this.secret = secret;
        }

        @Override
        public byte[] getUserIdentifier() {
            return identifier;
        }

        @Override
        public int getUserIndex() {
            return index;
        }

        @Override
        public byte[] getTypeAuth() {
            return Util.encodeString("HS_SECKEY");
        }

        @Override
        public byte[] authenticateAction(ChallengeResponse challenge, BaseRequest request) throws IdentifierException {
            try {
                byte[] salt = new byte[16];
                new SecureRandom().nextBytes(salt);
                int iterations = 10000;
                int bits = 160;
                byte[] key = Util.doPBKDF2(secret, salt, iterations, bits);
                Mac mac = Mac.getInstance("HmacSHA1");
                mac.init(new SecretKeySpec(key, "HmacSHA1"));
                mac.update(challenge.nonce);
                mac.update(challenge.requestDigest);
                byte[] m = mac.doFinal();
                ByteArrayOutputStream b = new ByteArrayOutputStream();
                DataOutputStream d = new DataOutputStream(b);
                d.writeByte(0x22);
                writeBytes(d, salt);
                d.writeInt(iterations);
                d.writeInt(bits);
                writeBytes(d, m);
                return b.toByteArray();
            } catch (Exception e) {
                throw new IdentifierException(0, "secret key answer", e);
            }
        }
    }

    /** A login with a secret key, as the SDK's own innerLogin does it with a key pair:
     * LOGIN_ID_SYSTEM through the channel's engine, the request digest always on. */
    private static BaseResponse secretLogin(IIDManageServiceChannel c, String identifier, int index, String secret) throws Exception {
        IDManageServiceChannelImpl impl = (IDManageServiceChannelImpl) c;
        AbstractAuthentication auth = new SecretKeyAuthentication(identifier, index, secret.getBytes(StandardCharsets.UTF_8));
        LoginIDSystemRequest req = new LoginIDSystemRequest(Util.encodeString(identifier), index, auth);
        req.returnRequestDigest = true;
        req.rdHashType = 3; // SHA-256
        BaseResponse r = bounded("login 2001 (secret)", () -> impl.getResolverEngine().processRequest(req, null));
        if (r != null && r.responseCode == 1) {
            impl.setUserIdentifier(identifier);
            impl.setLogin(true);
        }
        return r;
    }

    //------------ administration -------------------------------------------------------------

    private static void admin(String secret, Path keyDir) throws Exception {
        IIDManageServiceChannel reader = channel();
        // 88.100.1/ABC-123 has a non-public value (INTERNAL at 50). The channel's lookups never
        // set PO (MsgSettings.publicOnly is false and has no setter), and the SDK answers a 402
        // only for LOGIN_ID_SYSTEM: idnode answers a channel opened as CAICT's (GET_SITE_INFO at
        // session id 0) with the public values rather than a challenge.
        check("anonymous: lookupIdentifier 88.100.1/ABC-123 as the demo does (PO clear; a non-public value at 50)", () -> {
            IdentifierValue[] vs = values(reader, "88.100.1/ABC-123");
            IdentifierValue url = byType(vs, "URL");
            require(url != null && byIndex(vs, 50) == null, "the public values");
            return vs.length + " values, URL = " + text(url.getData());
        });
        check("anonymous: a ResolutionRequest with PO set through the channel's engine: the public values", () -> {
            ResolutionRequest req = new ResolutionRequest(Util.encodeString("88.100.1/ABC-123"), null, null, null);
            req.ignoreRestrictedValues = true;
            BaseResponse r = bounded("processRequest", () -> ((IDManageServiceChannelImpl) reader).getResolverEngine()
                .processRequest(req, null));
            require(r instanceof ResolutionResponse, "a resolution, got " + describe(r));
            IdentifierValue[] vs = ((ResolutionResponse) r).getAllIDValues();
            require(byType(vs, "URL") != null && byIndex(vs, 50) == null, "the public values");
            return vs.length + " values";
        });
        check("anonymous: lookupIdentifier of a missing identifier is ErrorResponse 100", () -> {
            BaseResponse r = lookup(reader, "88.100.1/NO-SUCH-THING");
            require(r instanceof ErrorResponse && r.responseCode == 100, "100, got " + describe(r));
            return describe(r);
        });
        check("anonymous: getServerSiteInfo", () -> {
            BaseResponse r = bounded("getServerSiteInfo", () -> reader.getServerSiteInfo(new MsgSettings()));
            require(r != null && r.responseCode == 1, "the site, got " + describe(r));
            return r.toString().replaceAll("\\s+", " ");
        });

        round("secret key (300:0.NA/88.100, our HS_SECKEY authentication)", "SECKEY",
            c -> secretLogin(c, PREFIX_RECORD, 300, secret), reader);
        String rsaPem = keyDir.resolve("rsa.pem").toString();
        round("RSA key (301:0.NA/88.100, rsa.pem, request digest MD5 as the demo)", "RSA-MD5",
            c -> bounded("login", () -> c.login(PREFIX_RECORD, 301, rsaPem, null, 1, new MsgSettings())), reader);
        round("RSA key (301:0.NA/88.100, rsa.pem, request digest SHA-256)", "RSA-SHA256",
            c -> bounded("login", () -> c.login(PREFIX_RECORD, 301, rsaPem, null, 3, new MsgSettings())), reader);
        String keygen = keyDir.resolve("keygen.bin").toString();
        round("RSA key from `idnode admin keygen` (302:0.NA/88.100, keygen.bin)", "KEYGEN",
            c -> bounded("login", () -> c.login(PREFIX_RECORD, 302, keygen, null, 3, new MsgSettings())), reader);

        check("a wrong secret: login 2001 is refused (403) and the channel stays logged out", () -> {
            IIDManageServiceChannel c = channel();
            BaseResponse r = secretLogin(c, PREFIX_RECORD, 300, secret + "-wrong");
            require(r instanceof ErrorResponse && r.responseCode == 403, "403, got " + describe(r));
            require(!c.isLogin(), "not logged in");
            BaseResponse create = bounded("createIdentifier", () -> c.createIdentifier("88.100/CAICT-WRONG",
                new IdentifierValue[] { new IdentifierValue(1, "URL", "https://example.com/wrong") }, new MsgSettings()));
            require(create == null || create.responseCode != 1, "not created, got " + describe(create));
            require(missing(reader, "88.100/CAICT-WRONG"), "nothing created");
            return describe(r) + "; a create afterwards: " + describe(create);
        });

        // What cannot work, reported as what the SDK does.
        check("SM2 key (303:0.NA/88.100, sm2.pem): the SDK cannot answer the challenge (expected)", () -> {
            IIDManageServiceChannel c = channel();
            try {
                BaseResponse r = bounded("login", () -> c.login(PREFIX_RECORD, 303, keyDir.resolve("sm2.pem").toString(), null, 3,
                    new MsgSettings()));
                require(r == null || r.responseCode != 1, "an SM2 login cannot succeed, got " + describe(r));
                return "refused: " + describe(r);
            } catch (IdentifierException e) {
                return "the SDK throws before answering (it asks Java for SHA256withEC): " + describe(e);
            }
        });
        check("password login (opcode 2000): refused by idnode, not supported (expected)", () -> {
            IIDManageServiceChannel c = channel();
            try {
                BaseResponse r = bounded("login 2000", () -> c.login(PREFIX_RECORD, secret, new MsgSettings()));
                require(r == null || r.responseCode != 1, "not a success, got " + describe(r));
                return describe(r);
            } catch (IdentifierException e) {
                return describe(e);
            }
        });
    }

    private interface Login {
        BaseResponse run(IIDManageServiceChannel c) throws Exception;
    }

    /** A login, then the life of one identifier on that channel, each step checked by resolving on
     * the anonymous channel READER. */
    private static void round(String label, String name, Login login, IIDManageServiceChannel reader) throws Exception {
        String h = "88.100/CAICT-" + name;
        IIDManageServiceChannel c = channel();
        boolean[] loggedIn = { false };
        check(label + ": login 2001", () -> {
            BaseResponse r = login.run(c);
            succeeded("login", r);
            require(c.isLogin(), "the channel says it is logged in");
            loggedIn[0] = true;
            return describe(r);
        });
        if (!loggedIn[0]) return;
        MsgSettings s = new MsgSettings();
        check(label + ": lookupIdentifier 88.100.1/ABC-123 on the logged-in channel reads the non-public value", () -> {
            IdentifierValue v = byIndex(values(c, "88.100.1/ABC-123"), 50);
            require(v != null, "INTERNAL at 50");
            return "INTERNAL = " + text(v.getData());
        });
        check(label + ": createIdentifier " + h, () -> {
            succeeded("create", bounded("createIdentifier", () -> c.createIdentifier(h,
                new IdentifierValue[] { new IdentifierValue(1, "URL", "https://example.com/caict/" + name) }, s)));
            IdentifierValue v = byIndex(values(reader, h), 1);
            require(v != null && text(v.getData()).equals("https://example.com/caict/" + name), "the URL resolves");
            return "resolves to " + text(v.getData());
        });
        check(label + ": addIdentifierValues (EMAIL at 2)", () -> {
            succeeded("add", bounded("addIdentifierValues", () -> c.addIdentifierValues(h,
                new IdentifierValue[] { new IdentifierValue(2, "EMAIL", "caict@example.com") }, s)));
            IdentifierValue[] vs = values(reader, h);
            IdentifierValue v = byIndex(vs, 2);
            require(v != null && text(v.getData()).equals("caict@example.com"), "the EMAIL resolves");
            return vs.length + " values";
        });
        check(label + ": modifyIdentifierValues (URL at 1)", () -> {
            succeeded("modify", bounded("modifyIdentifierValues", () -> c.modifyIdentifierValues(h,
                new IdentifierValue[] { new IdentifierValue(1, "URL", "https://example.com/caict/modified") }, s)));
            IdentifierValue v = byIndex(values(reader, h), 1);
            require(v != null && text(v.getData()).equals("https://example.com/caict/modified"), "the modified URL resolves");
            return "URL = " + text(v.getData());
        });
        check(label + ": removeIdentifierValues (index 2)", () -> {
            succeeded("remove", bounded("removeIdentifierValues", () -> c.removeIdentifierValues(h, new int[] { 2 }, s)));
            IdentifierValue[] vs = values(reader, h);
            require(byIndex(vs, 2) == null && byIndex(vs, 1) != null, "only the URL is left");
            return vs.length + " value left";
        });
        check(label + ": createIdentifier of an existing identifier is ErrorResponse 101", () -> {
            BaseResponse r = bounded("createIdentifier", () -> c.createIdentifier(h,
                new IdentifierValue[] { new IdentifierValue(1, "URL", "https://example.com/caict/again") }, s));
            require(r instanceof ErrorResponse && r.responseCode == 101, "101, got " + describe(r));
            return describe(r);
        });
        check(label + ": deleteIdentifier " + h, () -> {
            succeeded("delete", bounded("deleteIdentifier", () -> c.deleteIdentifier(h, s)));
            require(missing(reader, h), "HANDLE_NOT_FOUND afterwards");
            return "gone (100 on resolving)";
        });
    }

    //------------ quota ----------------------------------------------------------------------

    private static void quota(String admin, String secret) throws Exception {
        int colon = admin.indexOf(':');
        String identity = admin.substring(colon + 1);
        int index = Integer.parseInt(admin.substring(0, colon));
        String prefix = identity.substring(identity.indexOf("0.NA/") + 5);
        IIDManageServiceChannel c = channel();
        check("quota identifiers = 1: login 2001 as " + admin, () -> {
            BaseResponse r = secretLogin(c, identity, index, secret);
            succeeded("login", r);
            return describe(r);
        });
        if (!c.isLogin()) return;
        MsgSettings s = new MsgSettings();
        check("quota identifiers = 1: the first createIdentifier under " + prefix, () -> {
            succeeded("create", bounded("createIdentifier", () -> c.createIdentifier(prefix + "/Q-1",
                new IdentifierValue[] { new IdentifierValue(1, "URL", "https://example.com/q/1") }, s)));
            return "created";
        });
        check("quota identifiers = 1: the second createIdentifier is an error naming 604 with idnode's message", () -> {
            BaseResponse r;
            try {
                r = bounded("createIdentifier", () -> c.createIdentifier(prefix + "/Q-2",
                    new IdentifierValue[] { new IdentifierValue(1, "URL", "https://example.com/q/2") }, s));
            } catch (IdentifierException e) {
                // The SDK turns RC_ERROR into an IdentifierException carrying the message.
                String m = String.valueOf(e.getMessage());
                require(m.contains("604") && m.contains("quota"), "idnode's message naming 604 and the quota, got " + describe(e));
                return describe(e);
            }
            throw new AssertionError("no error: " + describe(r));
        });
        check("quota identifiers = 1: the channel still works after the refusal (replace, delete)", () -> {
            MsgSettings overwrite = new MsgSettings();
            succeeded("modify", bounded("modifyIdentifierValues", () -> c.modifyIdentifierValues(prefix + "/Q-1",
                new IdentifierValue[] { new IdentifierValue(1, "URL", "https://example.com/q/1b") }, overwrite)));
            succeeded("delete", bounded("deleteIdentifier", () -> c.deleteIdentifier(prefix + "/Q-1", overwrite)));
            return "modified and deleted on the same channel";
        });
    }
}
