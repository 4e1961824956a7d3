// idnode's own clean-room stand-in, NOT hutool's code (conformance/national-sdk/README.md, "Stubs").
// Teleinfo's id-pointer-sdk 2.3.x calls hutool-crypto 5.8's SM2 (`new SM2(priv, pub)`,
// `signHex(dataHex, idHex)`, `sign`, `verify`, `encrypt`, `decrypt`); hutool 5.8 is not in Debian and
// the 4.6.3 jar found offline lacks these methods. This class does what hutool 5.8 documents, with
// BouncyCastle: signatures by BC's SM2Signer with SM3 and DER (r, s), the signer's identity when
// given (else BC's default 1234567812345678); encryption SM2 C1C3C2 with SM3. It shadows hutool's
// class of the same name, so it comes before hutool-all on the class path.
package cn.hutool.crypto.asymmetric;

import java.security.InvalidKeyException;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.SecureRandom;

import org.bouncycastle.crypto.CipherParameters;
import org.bouncycastle.crypto.CryptoException;
import org.bouncycastle.crypto.InvalidCipherTextException;
import org.bouncycastle.crypto.digests.SM3Digest;
import org.bouncycastle.crypto.engines.SM2Engine;
import org.bouncycastle.crypto.params.ParametersWithID;
import org.bouncycastle.crypto.params.ParametersWithRandom;
import org.bouncycastle.crypto.signers.SM2Signer;
import org.bouncycastle.crypto.signers.StandardDSAEncoding;
import org.bouncycastle.jcajce.provider.asymmetric.util.ECUtil;
import org.bouncycastle.util.encoders.Hex;

public class SM2 {
    private final CipherParameters privateParams;
    private final CipherParameters publicParams;

    public SM2(PrivateKey privateKey, PublicKey publicKey) {
        try {
            privateParams = privateKey == null ? null : ECUtil.generatePrivateKeyParameter(privateKey);
            publicParams = publicKey == null ? null : ECUtil.generatePublicKeyParameter(publicKey);
        } catch (InvalidKeyException e) {
            throw new IllegalArgumentException("not an SM2 (EC) key: " + e.getMessage(), e);
        }
    }

    public byte[] sign(byte[] data) {
        return sign(data, null);
    }

    public byte[] sign(byte[] data, byte[] id) {
        SM2Signer signer = new SM2Signer(StandardDSAEncoding.INSTANCE, new SM3Digest());
        CipherParameters params = new ParametersWithRandom(privateParams, new SecureRandom());
        signer.init(true, id == null ? params : new ParametersWithID(params, id));
        signer.update(data, 0, data.length);
        try {
            return signer.generateSignature();
        } catch (CryptoException e) {
            throw new IllegalStateException("SM2 signing failed", e);
        }
    }

    public String signHex(String dataHex, String idHex) {
        return Hex.toHexString(sign(Hex.decode(dataHex), idHex == null ? null : Hex.decode(idHex)));
    }

    public boolean verify(byte[] data, byte[] signature) {
        return verify(data, signature, null);
    }

    public boolean verify(byte[] data, byte[] signature, byte[] id) {
        SM2Signer signer = new SM2Signer(StandardDSAEncoding.INSTANCE, new SM3Digest());
        signer.init(false, id == null ? publicParams : new ParametersWithID(publicParams, id));
        signer.update(data, 0, data.length);
        return signer.verifySignature(signature);
    }

    public byte[] encrypt(byte[] data) {
        SM2Engine engine = new SM2Engine(new SM3Digest(), SM2Engine.Mode.C1C3C2);
        engine.init(true, new ParametersWithRandom(publicParams, new SecureRandom()));
        try {
            return engine.processBlock(data, 0, data.length);
        } catch (InvalidCipherTextException e) {
            throw new IllegalStateException("SM2 encryption failed", e);
        }
    }

    public byte[] decrypt(byte[] data) {
        SM2Engine engine = new SM2Engine(new SM3Digest(), SM2Engine.Mode.C1C3C2);
        engine.init(false, privateParams);
        try {
            return engine.processBlock(data, 0, data.length);
        } catch (InvalidCipherTextException e) {
            throw new IllegalStateException("SM2 decryption failed", e);
        }
    }
}
