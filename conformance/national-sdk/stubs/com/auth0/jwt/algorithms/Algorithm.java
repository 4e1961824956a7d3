// idnode's own compile-only stand-in, NOT Auth0's java-jwt (see com/auth0/jwt/JWT.java).
package com.auth0.jwt.algorithms;

public class Algorithm {
    public static Algorithm RSA256(java.security.interfaces.RSAPublicKey publicKey,
            java.security.interfaces.RSAPrivateKey privateKey) {
        throw new UnsupportedOperationException("java-jwt is not available in this offline build (idnode stub)");
    }
}
