// idnode's own compile-only stand-in, NOT hutool's code (conformance/national-sdk/README.md, "Stubs").
// Teleinfo's SDK uses hutool 5.8's SM4 only for its optional encrypted transport (`encrypt = true`),
// which the conformance check does not use; hutool 4.6.3 has no SM4. Every call throws.
package cn.hutool.crypto.symmetric;

public class SM4 {
    public SM4(cn.hutool.crypto.Mode mode, cn.hutool.crypto.Padding padding, byte[] key, byte[] iv) {
        throw new UnsupportedOperationException("SM4 is not available in this offline build (idnode stub)");
    }

    public byte[] encrypt(byte[] data) {
        throw new UnsupportedOperationException("SM4 stub");
    }

    public byte[] decrypt(byte[] data) {
        throw new UnsupportedOperationException("SM4 stub");
    }
}
