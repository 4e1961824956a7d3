// idnode's own compile-only stand-in, NOT Auth0's java-jwt (conformance/national-sdk/README.md,
// "Stubs"). Teleinfo's SDK uses java-jwt only in ValueHelper.generateUserToken (a token for
// recursive resolution with an identity), which the conformance check does not use. Every call throws.
package com.auth0.jwt;

public class JWT {
    public static Builder create() {
        throw new UnsupportedOperationException("java-jwt is not available in this offline build (idnode stub)");
    }

    public static class Builder {
        public Builder withClaim(String name, Integer value) {
            return this;
        }

        public Builder withClaim(String name, Long value) {
            return this;
        }

        public Builder withClaim(String name, String value) {
            return this;
        }

        public String sign(com.auth0.jwt.algorithms.Algorithm algorithm) {
            throw new UnsupportedOperationException("java-jwt stub");
        }
    }
}
