// idnode's administration check with CNRI's Handle.Net 9.x client library (conformance/handle-java/run).
// Our own code, written against CNRI's public API (net.handle.hdllib); it needs CNRI's jars on the
// class path, which are not part of this repository.
//
// Usage: java HandleJavaAdmin ADMIN SECRET_FILE OTHER_ADMIN OTHER_SECRET_FILE
//   ADMIN: the prefix operator, e.g. 300:0.NA/88.100, whose secret is the first line of SECRET_FILE.
//   OTHER_ADMIN: the operator of another prefix (300:0.NA/88.200), with OTHER_SECRET_FILE.
// The node is found the way CNRI's tools find it: through local_info.json in the client
// configuration (-Dnet.handle.configDir), which lists the node's site for the prefixes.
// Prints one "ok"/"FAIL" line per check and "N passed, M failed" at the end; exits 1 on failure.

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import net.handle.hdllib.AbstractMessage;
import net.handle.hdllib.AbstractRequest;
import net.handle.hdllib.AbstractResponse;
import net.handle.hdllib.AddValueRequest;
import net.handle.hdllib.AdminRecord;
import net.handle.hdllib.AuthenticationInfo;
import net.handle.hdllib.ClientSessionTracker;
import net.handle.hdllib.Common;
import net.handle.hdllib.CreateHandleRequest;
import net.handle.hdllib.DeleteHandleRequest;
import net.handle.hdllib.Encoder;
import net.handle.hdllib.ErrorResponse;
import net.handle.hdllib.HandleException;
import net.handle.hdllib.HandleResolver;
import net.handle.hdllib.HandleValue;
import net.handle.hdllib.ListHandlesRequest;
import net.handle.hdllib.ListHandlesResponse;
import net.handle.hdllib.ModifyValueRequest;
import net.handle.hdllib.PublicKeyAuthenticationInfo;
import net.handle.hdllib.RemoveValueRequest;
import net.handle.hdllib.ResolutionRequest;
import net.handle.hdllib.ResolutionResponse;
import net.handle.hdllib.SecretKeyAuthenticationInfo;
import net.handle.hdllib.Util;

public class HandleJavaAdmin {
    private static String secret(String file) throws Exception {
        return new String(Files.readAllBytes(Paths.get(file)), StandardCharsets.UTF_8).split("\n")[0].trim();
    }

    /** "300:0.NA/88.100" as CNRI's secret-key authentication. */
    private static SecretKeyAuthenticationInfo secretKey(String admin, String secret) {
        int colon = admin.indexOf(':');
        return new SecretKeyAuthenticationInfo(Util.encodeString(admin.substring(colon + 1)),
            Integer.parseInt(admin.substring(0, colon)), Util.encodeString(secret));
    }

    /** A resolver as CNRI's tools make one: default session tracker unless told otherwise, no caches. */
    private static HandleResolver resolver(boolean sessions) {
        HandleResolver r = new HandleResolver();
        if (!sessions) r.setSessionTracker(null);
        r.setCache(null);
        r.setCertifiedCache(null);
        r.traceMessages = Boolean.getBoolean("trace");
        return r;
    }

    /** Sends a request and requires SUCCESS, naming the code and message otherwise. */
    private static AbstractResponse succeed(HandleResolver r, AbstractRequest req) throws Exception {
        AbstractResponse resp = r.processRequest(req);
        if (resp.responseCode != AbstractMessage.RC_SUCCESS) {
            String msg = resp instanceof ErrorResponse ? new String(((ErrorResponse) resp).message, StandardCharsets.UTF_8) : "";
            throw new AssertionError("code " + resp.responseCode + " "
                + AbstractMessage.getResponseCodeMessage(resp.responseCode) + " " + msg);
        }
        return resp;
    }

    /** Sends a request that must be refused with CODE; CNRI's client reports a refusal either way. */
    private static String refused(HandleResolver r, AbstractRequest req, int code) throws Exception {
        AbstractResponse resp;
        try {
            resp = r.processRequest(req);
        } catch (HandleException e) {
            throw new AssertionError("response code " + code + " expected, CNRI's client threw " + e);
        }
        Checks.require(resp.responseCode == code, "code " + code + " expected, got " + resp.responseCode + " "
            + AbstractMessage.getResponseCodeMessage(resp.responseCode));
        String msg = resp instanceof ErrorResponse ? new String(((ErrorResponse) resp).message, StandardCharsets.UTF_8) : "";
        return resp.responseCode + " " + AbstractMessage.getResponseCodeMessage(resp.responseCode) + " \"" + msg + "\"";
    }

    /** All values of HANDLE as the public sees them (a fresh resolver, no session). */
    private static HandleValue[] publicValues(String handle) throws Exception {
        AbstractResponse resp = resolver(false).processRequest(
            new ResolutionRequest(Util.encodeString(handle), null, null, null));
        if (resp.responseCode == AbstractMessage.RC_HANDLE_NOT_FOUND) return null;
        Checks.require(resp instanceof ResolutionResponse, "a ResolutionResponse, not " + resp);
        return ((ResolutionResponse) resp).getHandleValues();
    }

    private static HandleValue value(HandleValue[] values, int index) {
        if (values == null) return null;
        for (HandleValue v : values) if (v.getIndex() == index) return v;
        return null;
    }

    private static HandleValue url(int index, String url) {
        return new HandleValue(index, Util.encodeString("URL"), Util.encodeString(url));
    }

    /** The HS_ADMIN value CNRI's hdl-create puts on a new handle: the operator, every right. */
    private static HandleValue adminValue(String admin) {
        return adminValue(100, admin);
    }

    /** An HS_ADMIN value at INDEX giving ADMIN ("300:0.NA/88.100") every right. */
    private static HandleValue adminValue(int index, String admin) {
        int colon = admin.indexOf(':');
        AdminRecord rec = new AdminRecord(Util.encodeString(admin.substring(colon + 1)),
            Integer.parseInt(admin.substring(0, colon)), true, true, true, true, true, true, true, true, true,
            true, true, true);
        HandleValue v = new HandleValue(index, Common.ADMIN_TYPE, Encoder.encodeAdminRecord(rec));
        v.setAnyoneCanRead(true);
        return v;
    }

    /** Create, add, modify, remove, list, read restricted, delete: the whole round as AUTH. */
    private static void adminRound(String label, HandleResolver r, AuthenticationInfo auth, String admin,
        String prefix, String handle) {
        byte[] h = Util.encodeString(handle);
        Checks.check(label + ": CreateHandleRequest " + handle, () -> {
            succeed(r, new CreateHandleRequest(h, new HandleValue[] { url(1, "https://example.com/java/1"),
                adminValue(admin) }, auth));
            HandleValue v = value(publicValues(handle), 1);
            Checks.require(v != null && v.getDataAsString().equals("https://example.com/java/1"), "the URL resolves");
            return "created, resolves to " + v.getDataAsString();
        });
        Checks.check(label + ": CreateHandleRequest again is HANDLE_ALREADY_EXISTS", () -> refused(r,
            new CreateHandleRequest(h, new HandleValue[] { url(1, "https://example.com/java/again") }, auth),
            AbstractMessage.RC_HANDLE_ALREADY_EXISTS));
        Checks.check(label + ": AddValueRequest (a public EMAIL, a restricted NOTE)", () -> {
            HandleValue email = new HandleValue(2, Util.encodeString("EMAIL"), Util.encodeString("java@example.com"));
            HandleValue note = new HandleValue(3, Util.encodeString("NOTE"), Util.encodeString("not for the public"));
            note.setAnyoneCanRead(false);
            succeed(r, new AddValueRequest(h, new HandleValue[] { email, note }, auth));
            HandleValue[] values = publicValues(handle);
            Checks.require(value(values, 2) != null, "the EMAIL resolves");
            Checks.require(value(values, 3) == null, "the restricted NOTE is not public");
            return values.length + " public values";
        });
        Checks.check(label + ": ModifyValueRequest index 1", () -> {
            succeed(r, new ModifyValueRequest(h, url(1, "https://example.com/java/modified"), auth));
            HandleValue v = value(publicValues(handle), 1);
            Checks.require(v != null && v.getDataAsString().equals("https://example.com/java/modified"), "modified URL");
            return "now " + v.getDataAsString();
        });
        Checks.check(label + ": resolution with ignoreRestrictedValues=false reads the restricted value", () -> {
            ResolutionRequest req = new ResolutionRequest(h, null, null, auth);
            req.ignoreRestrictedValues = false;
            AbstractResponse resp = succeed(r, req);
            HandleValue note = value(((ResolutionResponse) resp).getHandleValues(), 3);
            Checks.require(note != null && note.getDataAsString().equals("not for the public"), "the NOTE");
            return "NOTE = " + note.getDataAsString();
        });
        Checks.check(label + ": RemoveValueRequest index 2", () -> {
            succeed(r, new RemoveValueRequest(h, 2, auth));
            Checks.require(value(publicValues(handle), 2) == null, "the EMAIL is gone");
            return "EMAIL gone";
        });
        Checks.check(label + ": RemoveValueRequest of a missing index is VALUES_NOT_FOUND", () -> refused(r,
            new RemoveValueRequest(h, 77, auth), AbstractMessage.RC_VALUES_NOT_FOUND));
        Checks.check(label + ": ListHandlesRequest " + prefix, () -> {
            List<String> names = new ArrayList<>();
            AbstractResponse last = r.processRequest(new ListHandlesRequest(Util.encodeString(prefix), auth), resp -> {
                if (resp instanceof ListHandlesResponse) {
                    for (byte[] n : ((ListHandlesResponse) resp).handles) names.add(Util.decodeString(n));
                } else {
                    throw new HandleException(HandleException.INTERNAL_ERROR, "not a listing: " + resp);
                }
            });
            Checks.require(last == null || last.responseCode == AbstractMessage.RC_SUCCESS, "SUCCESS, not " + last);
            Checks.require(names.contains(handle), handle + " among " + names);
            return names.size() + " handles: " + names;
        });
        Checks.check(label + ": DeleteHandleRequest " + handle, () -> {
            succeed(r, new DeleteHandleRequest(h, auth));
            Checks.require(publicValues(handle) == null, "HANDLE_NOT_FOUND afterwards");
            return "gone";
        });
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 4 && args.length != 6) {
            System.err.println("usage: HandleJavaAdmin ADMIN SECRET_FILE OTHER_ADMIN OTHER_SECRET_FILE [KEY_FILE PASSPHRASE_FILE]");
            System.exit(2);
        }
        String admin = args[0];
        String secret = secret(args[1]);
        String other = args[2];
        String otherSecret = secret(args[3]);
        String adminHandle = admin.substring(admin.indexOf(':') + 1);
        String prefix = adminHandle; // 0.NA/88.100
        String suffixPrefix = prefix.substring("0.NA/".length()); // 88.100
        SecretKeyAuthenticationInfo auth = secretKey(admin, secret);

        // 1. Secret key with CNRI's default resolver: a Diffie-Hellman session before admin requests.
        HandleResolver withSessions = resolver(true);
        Checks.require(withSessions.getSessionTracker() != null, "new HandleResolver() has a session tracker");
        adminRound("secret key, session", withSessions, auth, admin, prefix, suffixPrefix + "/JAVA-1");
        // ... and plain challenge-response, as with resolver.setSessionTracker(null).
        HandleResolver plain = resolver(false);
        adminRound("secret key, no session", plain, auth, admin, prefix, suffixPrefix + "/JAVA-2");

        // 2. Key pairs: the public key stored as HS_PUBKEY on the operator's record by the
        // secret-key operator, with an HS_ADMIN value making INDEX:0.NA/88.100 an administrator
        // (as CNRI's admin tool adds one), then the private key authenticates.
        String[][] algorithms = { { "RSA", "2048", "301" }, { "DSA", "2048", "302" } };
        for (String[] alg : algorithms) {
            String name = alg[0];
            int bits = Integer.parseInt(alg[1]);
            keyPairRound(name + " key pair", name, Integer.parseInt(alg[2]), withSessions, auth, adminHandle, suffixPrefix,
                () -> {
                    KeyPairGenerator gen = KeyPairGenerator.getInstance(name);
                    gen.initialize(bits);
                    KeyPair pair = gen.generateKeyPair();
                    return new Object[] { Util.getBytesFromPublicKey(pair.getPublic()), pair.getPrivate() };
                });
        }
        // ... and the key pair `idnode admin keygen` wrote: CNRI's Util reads both files.
        if (args.length == 6) {
            String keyFile = args[4];
            byte[] passphrase = secret(args[5]).getBytes(StandardCharsets.UTF_8);
            keyPairRound("idnode admin keygen key pair", "KEYGEN", 303, withSessions, auth, adminHandle, suffixPrefix, () -> {
                byte[] file = Files.readAllBytes(Paths.get(keyFile));
                Checks.require(Util.requiresSecretKey(file), "the key file is encrypted");
                PrivateKey key = Util.getPrivateKeyFromBytes(Util.decrypt(file, passphrase), 0);
                byte[] pub = Files.readAllBytes(Paths.get(keyFile + ".pub"));
                Checks.require(Util.getPublicKeyFromBytes(pub) != null, "the .pub file is a key");
                return new Object[] { pub, key };
            });
        }

        // 3. Refusals.
        for (boolean sessions : new boolean[] { true, false }) {
            String how = sessions ? "session" : "no session";
            Checks.check("a wrong secret is AUTHENTICATION_FAILED (" + how + ")", () -> refused(resolver(sessions),
                new CreateHandleRequest(Util.encodeString(suffixPrefix + "/JAVA-WRONG"),
                    new HandleValue[] { url(1, "https://example.com/wrong") }, secretKey(admin, secret + "-wrong")),
                AbstractMessage.RC_AUTHENTICATION_FAILED));
            Checks.check("the operator of another prefix is INSUFFICIENT_PERMISSIONS (" + how + ")", () -> refused(
                resolver(sessions), new CreateHandleRequest(Util.encodeString(suffixPrefix + "/JAVA-OTHER"),
                    new HandleValue[] { url(1, "https://example.com/other") }, secretKey(other, otherSecret)),
                AbstractMessage.RC_INSUFFICIENT_PERMISSIONS));
        }
        Checks.check("nothing was created by the refused requests", () -> {
            Checks.require(publicValues(suffixPrefix + "/JAVA-WRONG") == null, "no JAVA-WRONG");
            Checks.require(publicValues(suffixPrefix + "/JAVA-OTHER") == null, "no JAVA-OTHER");
            return null;
        });

        Checks.finish();
    }

    interface KeySource {
        Object[] get() throws Exception;
    }

    /** Stores a key pair's public key as HS_PUBKEY at INDEX of the operator's record, with an
     * HS_ADMIN value making INDEX:operator an administrator (as CNRI's admin tool adds one), then
     * creates and deletes an identifier with the private key, with and without a session. */
    private static void keyPairRound(String label, String name, int index, HandleResolver withSessions,
            AuthenticationInfo auth, String adminHandle, String suffixPrefix, KeySource source) {
        PrivateKey[] priv = new PrivateKey[1];
        Checks.check(label + ": HS_PUBKEY stored at " + index + ":" + adminHandle + ", an administrator", () -> {
            Object[] pair = source.get();
            byte[] pubBytes = (byte[]) pair[0];
            HandleValue pub = new HandleValue(index, Common.PUBLIC_KEY_TYPE, pubBytes);
            HandleValue admins = adminValue(index - 200, index + ":" + adminHandle);
            succeed(withSessions, new AddValueRequest(Util.encodeString(adminHandle),
                new HandleValue[] { pub, admins }, auth));
            HandleValue stored = value(publicValues(adminHandle), index);
            Checks.require(stored != null && Arrays.equals(stored.getData(), pub.getData()), "the key resolves as stored");
            priv[0] = (PrivateKey) pair[1];
            return priv[0].getAlgorithm() + ", " + pubBytes.length + " bytes";
        });
        if (priv[0] == null) return;
        PublicKeyAuthenticationInfo keyAuth = new PublicKeyAuthenticationInfo(Util.encodeString(adminHandle), index, priv[0]);
        String handle = suffixPrefix + "/JAVA-" + name;
        HandleResolver r = resolver(true);
        Checks.check(label + ", session: CreateHandleRequest " + handle, () -> {
            succeed(r, new CreateHandleRequest(Util.encodeString(handle),
                new HandleValue[] { url(1, "https://example.com/java/" + name) }, keyAuth));
            Checks.require(value(publicValues(handle), 1) != null, "it resolves");
            return "created";
        });
        Checks.check(label + ", session: DeleteHandleRequest " + handle, () -> {
            succeed(r, new DeleteHandleRequest(Util.encodeString(handle), keyAuth));
            Checks.require(publicValues(handle) == null, "HANDLE_NOT_FOUND afterwards");
            return "gone";
        });
        Checks.check(label + ", no session: CreateHandleRequest and DeleteHandleRequest", () -> {
            HandleResolver p = resolver(false);
            succeed(p, new CreateHandleRequest(Util.encodeString(handle),
                new HandleValue[] { url(1, "https://example.com/java/" + name) }, keyAuth));
            succeed(p, new DeleteHandleRequest(Util.encodeString(handle), keyAuth));
            return "created and deleted";
        });
    }
}
