// idnode's check with CNRI's Handle.Net 9.x client library (conformance/handle-java/run).
// Our own code, written against CNRI's public API (net.handle.hdllib); it needs CNRI's jars
// on the class path, which are not part of this repository.
//
// Usage: java HandleJavaCheck SITEINFO_JSON SITEINFO_BIN IDENTIFIER EXPECTED_URL
//   SITEINFO_JSON, SITEINFO_BIN: what `idnode admin site-info` printed and wrote for the node.
// Prints one "ok"/"FAIL" line per check and "N passed, M failed" at the end; exits 1 on failure.

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.PublicKey;
import java.util.Arrays;

import net.handle.apps.simple.SiteInfoConverter;
import net.handle.hdllib.AbstractMessage;
import net.handle.hdllib.AbstractResponse;
import net.handle.hdllib.Encoder;
import net.handle.hdllib.ErrorResponse;
import net.handle.hdllib.GenericRequest;
import net.handle.hdllib.GetSiteInfoResponse;
import net.handle.hdllib.HandleException;
import net.handle.hdllib.HandleResolver;
import net.handle.hdllib.HandleValue;
import net.handle.hdllib.Interface;
import net.handle.hdllib.ResolutionRequest;
import net.handle.hdllib.ResolutionResponse;
import net.handle.hdllib.SiteInfo;
import net.handle.hdllib.Util;

public class HandleJavaCheck {
    public static void main(String[] args) throws Exception {
        if (args.length == 4 && args[0].equals("--recursive")) {
            recursive(args[1], args[2], args[3]);
            return;
        }
        if (args.length != 4) {
            System.err.println("usage: HandleJavaCheck SITEINFO_JSON SITEINFO_BIN IDENTIFIER EXPECTED_URL");
            System.err.println("       HandleJavaCheck --recursive SITEINFO_JSON IDENTIFIER EXPECTED_URL");
            System.exit(2);
        }
        String json = new String(Files.readAllBytes(Paths.get(args[0])), StandardCharsets.UTF_8);
        byte[] bin = Files.readAllBytes(Paths.get(args[1]));
        String identifier = args[2];
        String expectedUrl = args[3];

        // CNRI's client with no session tracker: resolution and site info need no session.
        HandleResolver resolver = new HandleResolver();
        resolver.setSessionTracker(null);
        // No caches: every check asks the node, over the transport it names.
        resolver.setCache(null);
        resolver.setCertifiedCache(null);
        resolver.traceMessages = Boolean.getBoolean("trace");

        SiteInfo[] site = new SiteInfo[1];
        Checks.check("siteinfo.json parses with SiteInfoConverter", () -> {
            site[0] = SiteInfoConverter.convertToSiteInfo(json);
            Checks.require(site[0].servers.length == 1, "one server");
            Checks.require(site[0].isPrimary, "primary");
            return site[0].servers[0].getAddressString() + " protocol " + site[0].majorProtocolVersion + "."
                + site[0].minorProtocolVersion + ", " + site[0].servers[0].interfaces.length + " interfaces";
        });
        if (site[0] == null) Checks.finish();

        Checks.check("siteinfo.bin decodes to the same site as siteinfo.json", () -> {
            SiteInfo decoded = new SiteInfo();
            Encoder.decodeSiteInfoRecord(bin, 0, decoded);
            byte[] fromJson = Encoder.encodeSiteInfoRecord(site[0]);
            Checks.require(Arrays.equals(Encoder.encodeSiteInfoRecord(decoded), fromJson),
                "same bytes re-encoded:\n  bin  " + Util.decodeHexString(Encoder.encodeSiteInfoRecord(decoded), false)
                + "\n  json " + Util.decodeHexString(fromJson, false));
            Checks.require(Arrays.equals(bin, Encoder.encodeSiteInfoRecord(site[0])), "CNRI encodes the JSON to siteinfo.bin");
            return bin.length + " bytes";
        });

        Checks.check("the site's public key is an RSA key", () -> {
            PublicKey key = Util.getPublicKeyFromBytes(site[0].servers[0].publicKey, 0);
            Checks.require("RSA".equals(key.getAlgorithm()), "RSA, not " + key.getAlgorithm());
            return key.getAlgorithm() + " " + ((java.security.interfaces.RSAPublicKey) key).getModulus().bitLength()
                + " bits";
        });

        int[][] protocols = { { Interface.SP_HDL_TCP }, { Interface.SP_HDL_UDP } };
        String[] names = { "TCP", "UDP" };
        for (int p = 0; p < protocols.length; p++) {
            int protocol = protocols[p][0];
            String over = " over " + names[p];

            Checks.check("GET_SITE_INFO" + over + " returns the published site", () -> {
                GenericRequest req = new GenericRequest(Util.encodeString("/"), AbstractMessage.OC_GET_SITE_INFO, null);
                AbstractResponse resp = resolver.sendRequestToSite(req, site[0], protocol);
                Checks.require(resp instanceof GetSiteInfoResponse, "a GetSiteInfoResponse, not " + resp);
                SiteInfo got = ((GetSiteInfoResponse) resp).siteInfo;
                Checks.require(Arrays.equals(Encoder.encodeSiteInfoRecord(got), bin), "the same site as siteinfo.bin");
                return "serial " + got.serialNumber + ", " + got.servers[0].getAddressString();
            });

            Checks.check("resolve " + identifier + over, () -> {
                ResolutionRequest req = new ResolutionRequest(Util.encodeString(identifier), null, null, null);
                AbstractResponse resp = resolver.sendRequestToSite(req, site[0], protocol);
                Checks.require(resp instanceof ResolutionResponse, "a ResolutionResponse, not " + resp);
                HandleValue[] values = ((ResolutionResponse) resp).getHandleValues();
                boolean found = false;
                for (HandleValue v : values) found |= v.getDataAsString().equals(expectedUrl);
                Checks.require(found, "a value " + expectedUrl + " among " + Arrays.toString(values));
                return values.length + " values, version " + resp.majorProtocolVersion + "." + resp.minorProtocolVersion;
            });

            Checks.check("certified resolution" + over + " verifies with the site's key", () -> {
                ResolutionRequest req = new ResolutionRequest(Util.encodeString(identifier), null, null, null);
                req.certify = true;
                req.returnRequestDigest = true;
                // sendRequestToSite checks the HS_SIGNED credential against the server's key in
                // the site, and the request digest; either failing throws.
                AbstractResponse resp = resolver.sendRequestToSite(req, site[0], protocol);
                Checks.require(resp instanceof ResolutionResponse, "a ResolutionResponse, not " + resp);
                Checks.require(resp.signature != null && resp.signature.length > 0, "a credential");
                PublicKey key = Util.getPublicKeyFromBytes(site[0].servers[0].publicKey, 0);
                Checks.require(resp.verifyMessage(key), "verifyMessage with the site's key");
                return "HS_SIGNED, " + resp.signature.length + " credential bytes";
            });

            Checks.check("certified GET_SITE_INFO" + over + " verifies", () -> {
                GenericRequest req = new GenericRequest(Util.encodeString("/"), AbstractMessage.OC_GET_SITE_INFO, null);
                req.certify = true;
                AbstractResponse resp = resolver.sendRequestToSite(req, site[0], protocol);
                Checks.require(resp instanceof GetSiteInfoResponse, "a GetSiteInfoResponse, not " + resp);
                return null;
            });
        }

        Checks.check("resolveHandle through local_info.json, the way CNRI's tools find a server", () -> {
            // conformance/handle-java/run lists the node's site for the identifier's prefix in
            // local_info.json of the client configuration (-Dnet.handle.configDir).
            HandleResolver configured = new HandleResolver();
            configured.setSessionTracker(null);
            configured.setCache(null);
            configured.setCertifiedCache(null);
            HandleValue[] values = configured.resolveHandle(identifier, null, null);
            boolean found = false;
            for (HandleValue v : values) found |= v.getDataAsString().equals(expectedUrl);
            Checks.require(found, "a value " + expectedUrl + " among " + Arrays.toString(values));
            return values.length + " values";
        });

        Checks.check("an unknown identifier is HANDLE_NOT_FOUND", () -> {
            ResolutionRequest req = new ResolutionRequest(Util.encodeString(identifier + "-none"), null, null, null);
            AbstractResponse resp = resolver.sendRequestToSite(req, site[0], Interface.SP_HDL_TCP);
            Checks.require(resp.responseCode == AbstractMessage.RC_HANDLE_NOT_FOUND, "code 100, not " + resp);
            Checks.require(resp instanceof ErrorResponse, "an ErrorResponse");
            return AbstractMessage.getResponseCodeMessage(resp.responseCode);
        });

        Checks.check("a tampered key fails verification", () -> {
            SiteInfo forged = SiteInfoConverter.convertToSiteInfo(json);
            byte[] key = forged.servers[0].publicKey.clone();
            // The modulus' last byte (CNRI's RSA encoding ends with 4 unused zero bytes): another key.
            key[key.length - 5] ^= 0x02;
            forged.servers[0].publicKey = key;
            ResolutionRequest req = new ResolutionRequest(Util.encodeString(identifier), null, null, null);
            req.certify = true;
            try {
                resolver.sendRequestToSite(req, forged, Interface.SP_HDL_TCP);
            } catch (HandleException e) {
                Checks.require(e.getCode() == HandleException.MISSING_OR_INVALID_SIGNATURE, "MISSING_OR_INVALID_SIGNATURE, not " + e);
                return "refused: " + e.getMessage();
            }
            throw new AssertionError("a response signed with another key was accepted");
        });

        Checks.finish();
    }

    /** A recursive node as the national public recursive node is used: the identifier asked
     * of that node alone, with the recursion flag set, over TCP and UDP; the node finds the
     * node serving it. */
    private static void recursive(String siteJson, String identifier, String expectedUrl) throws Exception {
        SiteInfo site = SiteInfoConverter.convertToSiteInfo(new String(Files.readAllBytes(Paths.get(siteJson)),
            StandardCharsets.UTF_8));
        HandleResolver resolver = new HandleResolver();
        resolver.setSessionTracker(null);
        resolver.setCache(null);
        resolver.setCertifiedCache(null);
        resolver.traceMessages = Boolean.getBoolean("trace");
        int[] protocols = { Interface.SP_HDL_TCP, Interface.SP_HDL_UDP };
        String[] names = { "TCP", "UDP" };
        for (int p = 0; p < protocols.length; p++) {
            int protocol = protocols[p];
            Checks.check("the recursive node resolves " + identifier + " over " + names[p] + " (REC set)", () -> {
                ResolutionRequest req = new ResolutionRequest(Util.encodeString(identifier), null, null, null);
                req.recursive = true;
                AbstractResponse resp = resolver.sendRequestToSite(req, site, protocol);
                Checks.require(resp instanceof ResolutionResponse, "a ResolutionResponse, not " + resp);
                HandleValue[] values = ((ResolutionResponse) resp).getHandleValues();
                Checks.require(Arrays.stream(values).anyMatch(v -> v.getDataAsString().equals(expectedUrl)), expectedUrl);
                return values.length + " values";
            });
        }
        Checks.check("an identifier the recursive node cannot place is refused, not hung", () -> {
            ResolutionRequest req = new ResolutionRequest(Util.encodeString("77.404/X"), null, null, null);
            req.recursive = true;
            AbstractResponse resp = resolver.sendRequestToSite(req, site, Interface.SP_HDL_TCP);
            Checks.require(resp.responseCode != AbstractMessage.RC_SUCCESS, "not SUCCESS");
            return resp.responseCode + " " + AbstractMessage.getResponseCodeMessage(resp.responseCode);
        });
        Checks.finish();
    }
}
