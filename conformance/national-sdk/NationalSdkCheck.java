// idnode's check with Teleinfo's id-pointer-sdk (conformance/national-sdk/run). Our own code,
// written against the SDK's public client API (IDClientFactory, IDClient, the AuthenticationInfo
// classes, ValueHelper, KeyConverter) as an enterprise application uses it; it needs the SDK's
// jar and its dependencies on the class path (conformance/national-sdk/build-sdk), which are not
// part of this repository.
//
// Usage:
//   java NationalSdkCheck keys OUT_DIR
//     Writes an RSA and an SM2 key pair as the SDK stores them (PKCS#8 PEM, KeyConverter) and
//     values.json: their HS_PUBKEY values in the SDK's encodings (Util.getBytesFromPublicKey for
//     RSA and SM2, ValueHelper.newIdisPublicKeyValue's bare PEM for SM2) at 301, 302 and 303 of
//     0.NA/88.100, each with an HS_ADMIN value at 101-103 naming it, for `idnode id put --merge`.
//   java NationalSdkCheck admin HOST PORT SECRET_FILE KEY_DIR
//     As 0.NA/88.100: login 2001 with its secret (300), the RSA key (301), the SM2 key read as an
//     "EC" key (302, answer hashAlgId SM3; also 303, the bare-PEM HS_PUBKEY) and read by the SDK's
//     KeyConverter (302, answer SHA256withSM2, hashAlgId SHA-256); with each: resolve, create,
//     add, modify, remove a value, delete, each checked by resolving. Then pooling (one channel
//     for many requests, two for concurrent ones) and the keep-alive of the SDK's login pool.
//   java NationalSdkCheck quota HOST PORT ID_ADMIN ID_SECRET_FILE DAILY_ADMIN DAILY_SECRET_FILE
//     On a node with [quota]: the second create under ID_ADMIN's prefix gets 604, a request past
//     DAILY_ADMIN's daily quota 603, as IDException codes with idnode's message.
// Prints one "ok"/"FAIL" line per check and "N passed, M failed"; exits 1 on failure.

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.Security;
import java.security.spec.ECGenParameterSpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import cn.teleinfo.idpointer.sdk.client.IDClient;
import cn.teleinfo.idpointer.sdk.client.IDClientFactory;
import cn.teleinfo.idpointer.sdk.client.LoginInfoPoolKey;
import cn.teleinfo.idpointer.sdk.client.ValueHelper;
import cn.teleinfo.idpointer.sdk.config.IDClientConfig;
import cn.teleinfo.idpointer.sdk.core.AbstractIdResponse;
import cn.teleinfo.idpointer.sdk.core.AuthenticationInfo;
import cn.teleinfo.idpointer.sdk.core.ErrorIdResponse;
import cn.teleinfo.idpointer.sdk.core.HandleValue;
import cn.teleinfo.idpointer.sdk.core.PublicKeyAuthenticationInfo;
import cn.teleinfo.idpointer.sdk.core.ResolutionIdRequest;
import cn.teleinfo.idpointer.sdk.core.ResolutionIdResponse;
import cn.teleinfo.idpointer.sdk.core.SecretKeyAuthenticationInfo;
import cn.teleinfo.idpointer.sdk.core.Util;
import cn.teleinfo.idpointer.sdk.core.ValueReference;
import cn.teleinfo.idpointer.sdk.exception.IDException;
import cn.teleinfo.idpointer.sdk.transport.ChannelPoolConfig;
import cn.teleinfo.idpointer.sdk.transport.ChannelPoolMapManager;
import cn.teleinfo.idpointer.sdk.transport.RequestIdFactoryDefault;
import cn.teleinfo.idpointer.sdk.transport.ResponsePromise;
import cn.teleinfo.idpointer.sdk.transport.TimedChannelPool;
import cn.teleinfo.idpointer.sdk.transport.TransportOnTcpLogin;
import cn.teleinfo.idpointer.sdk.util.KeyConverter;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import org.bouncycastle.jce.provider.BouncyCastleProvider;

public class NationalSdkCheck {
    private static final String PREFIX_RECORD = "0.NA/88.100";
    private static int passed = 0;
    private static int failed = 0;

    private interface Check {
        String run() throws Exception;
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

    /** An IDException with the node's answer: its code and the error message idnode sent. */
    private static String describe(Throwable e) {
        if (e instanceof IDException) {
            IDException ide = (IDException) e;
            String s = "IDException " + ide.getCode() + " " + ide.getMessage();
            if (ide.getResponse() instanceof ErrorIdResponse) {
                s += " \"" + Util.decodeString(((ErrorIdResponse) ide.getResponse()).message) + "\"";
            }
            if (ide.getCause() != null) s += " caused by " + describe(ide.getCause());
            return s;
        }
        return e.toString() + (e.getCause() != null && e.getCause() != e ? " caused by " + describe(e.getCause()) : "");
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
                admin(new InetSocketAddress(args[1], Integer.parseInt(args[2])), firstLine(args[3]), Paths.get(args[4]));
                break;
            case "quota":
                quota(new InetSocketAddress(args[1], Integer.parseInt(args[2])), args[3], firstLine(args[4]), args[5],
                    firstLine(args[6]));
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
        // A BouncyCastle EC key on sm2p256v1, as hutool's SecureUtil.generateKeyPair("SM2") makes one:
        // the SDK encodes only java.security.interfaces.ECPublicKey keys as SM2_PUB_KEY.
        KeyPairGenerator sm2Gen = KeyPairGenerator.getInstance("EC", new BouncyCastleProvider());
        sm2Gen.initialize(new ECGenParameterSpec("sm2p256v1"));
        KeyPair sm2 = sm2Gen.generateKeyPair();
        Files.write(out.resolve("rsa.pem"), KeyConverter.toPkcs8UnencryptedPem(rsa.getPrivate()).getBytes(StandardCharsets.US_ASCII));
        Files.write(out.resolve("sm2.pem"), KeyConverter.toPkcs8UnencryptedPem(sm2.getPrivate()).getBytes(StandardCharsets.US_ASCII));
        ValueHelper helper = ValueHelper.getInstance();
        HandleValue rsaValue = helper.newPublicKeyValue(301, rsa.getPublic());
        HandleValue sm2Value = helper.newPublicKeyValue(302, sm2.getPublic());
        HandleValue idisValue = helper.newIdisPublicKeyValue(303, sm2.getPublic());
        Files.write(out.resolve("sm2-pubkey.hex"), hex(sm2Value.getData()).getBytes(StandardCharsets.US_ASCII));
        StringBuilder json = new StringBuilder("[");
        for (HandleValue v : new HandleValue[] { rsaValue, sm2Value, idisValue }) {
            json.append(String.format("{\"index\": %d, \"type\": \"HS_PUBKEY\", \"data\": {\"format\": \"base64\", \"value\": \"%s\"}},%n",
                v.getIndex(), Base64.getEncoder().encodeToString(v.getData())));
            json.append(String.format("{\"index\": %d, \"type\": \"HS_ADMIN\", \"data\": {\"format\": \"admin\", \"value\": "
                + "{\"handle\": \"%s\", \"index\": %d, \"permissions\": \"111111111111\"}}},%n", v.getIndex() - 200, PREFIX_RECORD, v.getIndex()));
        }
        json.setLength(json.length() - 2);
        json.append("]\n");
        Files.write(out.resolve("values.json"), json.toString().getBytes(StandardCharsets.UTF_8));
    }

    private static String hex(byte[] b) {
        StringBuilder s = new StringBuilder();
        for (byte x : b) s.append(String.format("%02x", x));
        return s.toString();
    }

    //------------ administration -------------------------------------------------------------

    /** The SDK's factory as an application configures it: a short promise timeout, so that a
     * request the SDK cannot decode fails within seconds instead of its default 60. */
    private static IDClientFactory factory(int maxConnections) {
        return new IDClientFactory(IDClientConfig.builder().prdEnv().promiseTimeout(10)
            .maxConnectionsPerServer(maxConnections).build());
    }

    private static void admin(InetSocketAddress node, String secret, Path keyDir) throws Exception {
        IDClientFactory factory = factory(1);
        try (IDClient anonymous = factory.newInstance(node)) {
            check("anonymous: resolveHandle 88.100.1/ABC-123 (public values)", () -> {
                HandleValue[] vs = anonymous.resolveHandle("88.100.1/ABC-123");
                HandleValue url = byType(vs, "URL");
                require(url != null, "a URL value");
                return vs.length + " values, URL = " + url.getDataAsString();
            });
            check("anonymous: resolveHandle of a missing identifier is IDException 100", () -> {
                try {
                    anonymous.resolveHandle("88.100.1/NO-SUCH-THING");
                } catch (IDException e) {
                    require(e.getCode() == 100, "code 100, got " + e.getCode());
                    return describe(e);
                }
                throw new AssertionError("resolved");
            });
        }

        String rsaPem = new String(Files.readAllBytes(keyDir.resolve("rsa.pem")), StandardCharsets.US_ASCII);
        String sm2Pem = new String(Files.readAllBytes(keyDir.resolve("sm2.pem")), StandardCharsets.US_ASCII);
        byte[] prefixRecord = Util.encodeString(PREFIX_RECORD);

        round(factory, node, "secret key (300:0.NA/88.100)", "SECKEY",
            new SecretKeyAuthenticationInfo(prefixRecord, 300, secret.getBytes(StandardCharsets.UTF_8)), anonymousClient(factory, node));
        round(factory, node, "RSA key pair (301:0.NA/88.100, KeyConverter.fromPkcs8Pem)", "RSA",
            new PublicKeyAuthenticationInfo(prefixRecord, 301, KeyConverter.fromPkcs8Pem(rsaPem)), anonymousClient(factory, node));
        // Path A: an SM2 key the application reads as an "EC" key (hutool's SecureUtil, as SDK
        // versions before 2.3.1 did themselves): the SDK answers SM3(nonce || digest) signed with
        // the administrator's handle as SM2 identity, hashAlgId "SM3".
        PrivateKey sm2Ec = hutoolSm2PrivateKey(sm2Pem);
        round(factory, node, "SM2 key read as EC (302:0.NA/88.100, SM2_PUB_KEY, hashAlgId SM3)", "SM2-EC",
            new PublicKeyAuthenticationInfo(prefixRecord, 302, sm2Ec), anonymousClient(factory, node));
        round(factory, node, "SM2 key read as EC (303:0.NA/88.100, bare-PEM HS_PUBKEY, hashAlgId SM3)", "SM2-IDIS",
            new PublicKeyAuthenticationInfo(prefixRecord, 303, sm2Ec), anonymousClient(factory, node));
        // Path B: the SDK's own reader gives an "SM2" key, signed through JCA's SHA256withSM2,
        // which exists once BouncyCastle is a registered provider (hutool 5.8 registers it).
        Security.addProvider(new BouncyCastleProvider());
        PrivateKey sm2Sdk = KeyConverter.fromPkcs8Pem(sm2Pem);
        round(factory, node, "SM2 key read by KeyConverter (302:0.NA/88.100, " + sm2Sdk.getAlgorithm() + ", SHA256withSM2)",
            "SM2-SDK", new PublicKeyAuthenticationInfo(prefixRecord, 302, sm2Sdk), anonymousClient(factory, node));

        check("a wrong secret: login fails with IDException", () -> {
            try (IDClient c = factory.newInstance(node, new SecretKeyAuthenticationInfo(prefixRecord, 300,
                    (secret + "-wrong").getBytes(StandardCharsets.UTF_8)))) {
                c.createHandle("88.100/SDK-WRONG", new HandleValue[] { new HandleValue(1, "URL", "https://example.com/wrong") });
            } catch (IDException e) {
                require(e.getCause() instanceof IDException && ((IDException) e.getCause()).getCode() == 403,
                    "login failure caused by 403 AUTHENTICATION_FAILED");
                try (IDClient a = factory.newInstance(node)) {
                    require(missing(a, "88.100/SDK-WRONG"), "nothing created");
                }
                return describe(e);
            }
            throw new AssertionError("created");
        });

        check("login 2001 with the secret on 24 fresh connections: every login succeeds", () -> {
            List<String> failures = new ArrayList<>();
            for (int i = 0; i < 24; i++) {
                try (IDClient c = factory.newInstance(node, new SecretKeyAuthenticationInfo(prefixRecord, 300,
                        secret.getBytes(StandardCharsets.UTF_8)))) {
                    c.resolveHandle("88.100.1/ABC-123");
                } catch (IDException e) {
                    failures.add("#" + (i + 1) + ": " + describe(e));
                }
            }
            if (!failures.isEmpty()) throw new AssertionError(failures.size() + " of 24 logins failed, first " + failures.get(0));
            return "24 of 24";
        });
        pooling(node, new SecretKeyAuthenticationInfo(prefixRecord, 300, secret.getBytes(StandardCharsets.UTF_8)));
        keepAlive(node, new SecretKeyAuthenticationInfo(prefixRecord, 300, secret.getBytes(StandardCharsets.UTF_8)));
    }

    private static IDClient anonymousClient(IDClientFactory factory, InetSocketAddress node) {
        return factory.newInstance(node);
    }

    /** PKCS#8 PEM -> the "EC" private key hutool's SecureUtil.generatePrivateKey("SM2", ...) gives. */
    private static PrivateKey hutoolSm2PrivateKey(String pem) throws Exception {
        String b64 = pem.replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
        byte[] der = Base64.getDecoder().decode(b64);
        try {
            return cn.hutool.crypto.SecureUtil.generatePrivateKey("SM2", der);
        } catch (Throwable e) {
            // hutool 4.6.3 without a registered BouncyCastle: the same key through BC directly.
            return KeyFactory.getInstance("EC", new BouncyCastleProvider()).generatePrivate(new java.security.spec.PKCS8EncodedKeySpec(der));
        }
    }

    private static HandleValue byType(HandleValue[] vs, String type) {
        if (vs == null) return null;
        for (HandleValue v : vs) if (v.getTypeAsString().equals(type)) return v;
        return null;
    }

    private static HandleValue byIndex(HandleValue[] vs, int index) {
        if (vs == null) return null;
        for (HandleValue v : vs) if (v.getIndex() == index) return v;
        return null;
    }

    private static boolean missing(IDClient c, String handle) throws IDException {
        try {
            c.resolveHandle(handle);
            return false;
        } catch (IDException e) {
            if (e.getCode() == 100) return true;
            throw e;
        }
    }

    /** Login 2001 with AUTH, then the life of one identifier, each step checked by resolving
     * with the anonymous client READER. */
    private static void round(IDClientFactory factory, InetSocketAddress node, String label, String name,
            AuthenticationInfo auth, IDClient reader) throws IOException {
        String h = "88.100/SDK-" + name;
        try (IDClient c = factory.newInstance(node, auth); IDClient r = reader) {
            boolean[] loggedIn = { false };
            check(label + ": login 2001, then resolveHandle 88.100.1/ABC-123 on the logged-in channel", () -> {
                HandleValue[] vs = c.resolveHandle("88.100.1/ABC-123");
                loggedIn[0] = true;
                return vs.length + " values";
            });
            if (!loggedIn[0]) return;
            check(label + ": createHandle " + h, () -> {
                c.createHandle(h, new HandleValue[] { new HandleValue(1, "URL", "https://example.com/sdk/" + name) });
                HandleValue v = byIndex(r.resolveHandle(h), 1);
                require(v != null && v.getDataAsString().equals("https://example.com/sdk/" + name), "the URL resolves");
                return "resolves to " + v.getDataAsString();
            });
            check(label + ": addHandleValues (EMAIL at 2)", () -> {
                c.addHandleValues(h, new HandleValue[] { new HandleValue(2, "EMAIL", "sdk@example.com") });
                HandleValue v = byIndex(r.resolveHandle(h), 2);
                require(v != null && v.getDataAsString().equals("sdk@example.com"), "the EMAIL resolves");
                return r.resolveHandle(h).length + " values";
            });
            check(label + ": updateHandleValues (URL at 1)", () -> {
                c.updateHandleValues(h, new HandleValue[] { new HandleValue(1, "URL", "https://example.com/sdk/modified") });
                HandleValue v = byIndex(r.resolveHandle(h), 1);
                require(v != null && v.getDataAsString().equals("https://example.com/sdk/modified"), "the modified URL resolves");
                return "URL = " + v.getDataAsString();
            });
            check(label + ": deleteHandleValues (index 2)", () -> {
                c.deleteHandleValues(h, new int[] { 2 });
                HandleValue[] vs = r.resolveHandle(h);
                require(byIndex(vs, 2) == null && byIndex(vs, 1) != null, "only the URL is left");
                return vs.length + " value left";
            });
            check(label + ": createHandle of an existing identifier is IDException 101", () -> {
                try {
                    c.createHandle(h, new HandleValue[] { new HandleValue(1, "URL", "https://example.com/sdk/again") });
                } catch (IDException e) {
                    require(e.getCode() == 101, "code 101, got " + e.getCode());
                    return describe(e);
                }
                throw new AssertionError("created twice");
            });
            check(label + ": deleteHandle " + h, () -> {
                c.deleteHandle(h);
                require(missing(r, h), "HANDLE_NOT_FOUND afterwards");
                return "gone (100 on resolving)";
            });
        }
    }

    //------------ pooling and keep-alive -----------------------------------------------------

    /** Local ports of this machine's TCP connections to PORT that are ESTABLISHED. */
    private static Set<String> connections(int port) throws IOException {
        Set<String> out = new HashSet<>();
        String want = String.format(":%04X", port);
        for (String file : new String[] { "/proc/net/tcp", "/proc/net/tcp6" }) {
            Path p = Paths.get(file);
            if (!Files.exists(p)) continue;
            for (String line : Files.readAllLines(p)) {
                String[] f = line.trim().split("\\s+");
                if (f.length > 3 && f[2].endsWith(want) && f[3].equals("01")) out.add(f[1]);
            }
        }
        return out;
    }

    private static void pooling(InetSocketAddress node, AuthenticationInfo auth) throws Exception {
        check("pooling: 30 requests on a logged-in client with one connection use one TCP connection", () -> {
            Set<String> before = connections(node.getPort());
            try (IDClient c = factory(1).newInstance(node, auth)) {
                for (int i = 0; i < 10; i++) {
                    String h = "88.100/SDK-POOL-" + i;
                    c.createHandle(h, new HandleValue[] { new HandleValue(1, "URL", "https://example.com/pool/" + i) });
                    require(byIndex(c.resolveHandle(h), 1) != null, h + " resolves");
                    c.deleteHandle(h);
                }
                Set<String> now = connections(node.getPort());
                now.removeAll(before);
                require(now.size() == 1, "one new connection, saw " + now.size());
                return "30 requests, 1 connection";
            }
        });
        check("pooling: 4 threads x 10 requests on a client with two connections", () -> {
            Set<String> before = connections(node.getPort());
            ExecutorService pool = Executors.newFixedThreadPool(4);
            try (IDClient c = factory(2).newInstance(node, auth)) {
                List<Future<Integer>> jobs = new ArrayList<>();
                for (int t = 0; t < 4; t++) {
                    jobs.add(pool.submit(() -> {
                        int n = 0;
                        for (int i = 0; i < 10; i++) n += c.resolveHandle("88.100.1/ABC-123").length > 0 ? 1 : 0;
                        return n;
                    }));
                }
                int answered = 0;
                for (Future<Integer> f : jobs) answered += f.get(60, TimeUnit.SECONDS);
                Set<String> now = connections(node.getPort());
                now.removeAll(before);
                require(answered == 40, "40 answers, got " + answered);
                require(now.size() >= 1 && now.size() <= 2, "one or two connections, saw " + now.size());
                return answered + " answers over " + now.size() + " connections";
            } finally {
                pool.shutdownNow();
            }
        });
    }

    /** Counts the SDK's keep-alives (RESOLUTION of "0", session id 0) going out on a channel and
     * the codes of what comes back, from the bytes on the wire. */
    private static final class WireTap extends ChannelDuplexHandler {
        final AtomicInteger keepAlives = new AtomicInteger();
        final List<Integer> codes = new ArrayList<>();

        @Override
        public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) throws Exception {
            if (msg instanceof ByteBuf) {
                ByteBuf b = (ByteBuf) msg;
                int at = b.readerIndex();
                // 20-byte envelope (session id at 4), then the header (opcode at 20); a resolution
                // body starts at 44 with the handle.
                if (b.readableBytes() >= 49 && b.getInt(at + 4) == 0 && b.getInt(at + 20) == 1
                        && b.getInt(at + 44) == 1 && b.getByte(at + 48) == '0') {
                    keepAlives.incrementAndGet();
                }
            }
            super.write(ctx, msg, promise);
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) throws Exception {
            if (msg instanceof ByteBuf && ((ByteBuf) msg).readableBytes() >= 28) {
                ByteBuf b = (ByteBuf) msg;
                synchronized (codes) {
                    codes.add(b.getInt(b.readerIndex() + 24));
                }
            }
            super.channelRead(ctx, msg);
        }
    }

    /** The keep-alive lives in the SDK's ChannelPoolMapManager pools (GlobalIdClientFactory builds
     * one; 2.3.1's DefaultIdClient does not use it): a logged-in pool with a 1 s idle time and
     * heatBeatRunning, driven through TransportOnTcpLogin as the SDK's login transport. */
    private static void keepAlive(InetSocketAddress node, AuthenticationInfo auth) {
        check("keep-alive: a logged-in channel idle for 4 s sends keep-alives, stays open and logged in", () -> {
            ChannelPoolConfig cfg = ChannelPoolConfig.builder().idleTimeSeconds(1).heatBeatRunning(true)
                .minConnectionsPerServer(1).maxConnectionsPerServer(1).build();
            ChannelPoolMapManager manager = new ChannelPoolMapManager(1, 10, cfg, cfg);
            TransportOnTcpLogin transport = new TransportOnTcpLogin(manager.getLoginChannelPoolMap(),
                manager.getMessageManager(), RequestIdFactoryDefault.getInstance());
            LoginInfoPoolKey key = new LoginInfoPoolKey(node,
                new ValueReference(Util.decodeString(auth.getUserIdHandle()), auth.getUserIdIndex()));
            Set<String> before = connections(node.getPort());
            AbstractIdResponse first = resolve(transport, key, auth);
            require(first instanceof ResolutionIdResponse, "a resolution answer after login, got " + first);
            TimedChannelPool pool = manager.getLoginChannelPoolMap().get(key);
            Channel ch = pool.acquire().get(10, TimeUnit.SECONDS);
            WireTap tap = new WireTap();
            ch.pipeline().addFirst("idnode-tap", tap);
            pool.release(ch);
            Thread.sleep(4000);
            require(ch.isActive(), "the channel is still open");
            require(tap.keepAlives.get() >= 2, "at least 2 keep-alives, saw " + tap.keepAlives.get());
            // Still logged in: the same connection answers without a new login.
            AbstractIdResponse second = resolve(transport, key, auth);
            require(second instanceof ResolutionIdResponse, "a resolution answer after the keep-alives, got " + second);
            Set<String> now = connections(node.getPort());
            now.removeAll(before);
            require(now.size() == 1, "one connection, saw " + now.size());
            String codes;
            synchronized (tap.codes) {
                codes = tap.codes.toString();
            }
            manager.getEventLoopGroup().shutdownGracefully(0, 1, TimeUnit.SECONDS);
            return tap.keepAlives.get() + " keep-alives answered with codes " + codes + ", same connection";
        });
    }

    private static AbstractIdResponse resolve(TransportOnTcpLogin transport, LoginInfoPoolKey key, AuthenticationInfo auth)
            throws Exception {
        ResolutionIdRequest req = new ResolutionIdRequest(Util.encodeString("88.100.1/ABC-123"), null, null, null);
        // TransportOnTcpLogin sends the request id it is given, as the SDK's own callers set it.
        req.requestId = RequestIdFactoryDefault.getInstance().getNextInteger();
        ResponsePromise p = transport.process(req, key, auth);
        return p.get(10, TimeUnit.SECONDS);
    }

    //------------ quotas ---------------------------------------------------------------------

    private static void quota(InetSocketAddress node, String idAdmin, String idSecret, String dailyAdmin,
            String dailySecret) throws Exception {
        IDClientFactory factory = factory(1);
        String idPrefix = idAdmin.substring(idAdmin.indexOf("0.NA/") + 5);
        String dailyPrefix = dailyAdmin.substring(dailyAdmin.indexOf("0.NA/") + 5);
        try (IDClient c = factory.newInstance(node, secretAuth(idAdmin, idSecret))) {
            check("quota identifiers = 1: the first createHandle under " + idPrefix, () -> {
                c.createHandle(idPrefix + "/Q-1", new HandleValue[] { new HandleValue(1, "URL", "https://example.com/q/1") });
                return "created";
            });
            check("quota identifiers = 1: the second createHandle is IDException 604 with idnode's message", () -> {
                try {
                    c.createHandle(idPrefix + "/Q-2", new HandleValue[] { new HandleValue(1, "URL", "https://example.com/q/2") });
                } catch (IDException e) {
                    require(e.getCode() == 604, "code 604, got " + e.getCode());
                    require(e.getResponse() instanceof ErrorIdResponse, "an error response with a message");
                    return describe(e);
                }
                throw new AssertionError("created past the quota");
            });
            check("quota identifiers = 1: replacing and deleting are not refused", () -> {
                c.createHandle(idPrefix + "/Q-1", new HandleValue[] { new HandleValue(1, "URL", "https://example.com/q/1b") }, true);
                c.deleteHandle(idPrefix + "/Q-1");
                return "overwritten and deleted";
            });
        }
        try (IDClient c = factory.newInstance(node, secretAuth(dailyAdmin, dailySecret))) {
            check("quota daily_requests: requests until the day's quota is spent, then IDException 603", () -> {
                int done = 0;
                for (int i = 0; i < 20; i++) {
                    try {
                        c.addHandleValues("0.NA/" + dailyPrefix, new HandleValue[] { new HandleValue(500 + i, "DESC", "request " + i) });
                        done++;
                    } catch (IDException e) {
                        require(e.getCode() == 603, "code 603 after " + done + " requests, got " + describe(e));
                        return done + " requests, then " + describe(e);
                    }
                }
                throw new AssertionError("20 requests and no 603");
            });
        }
    }

    private static AuthenticationInfo secretAuth(String admin, String secret) {
        int colon = admin.indexOf(':');
        return new SecretKeyAuthenticationInfo(Util.encodeString(admin.substring(colon + 1)),
            Integer.parseInt(admin.substring(0, colon)), secret.getBytes(StandardCharsets.UTF_8));
    }
}
