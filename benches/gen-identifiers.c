/* The lines of benches/gen-identifiers, byte for byte, for loads of 100,000,000 where the Python
 * generator's own CPU (about 1.5 s a million lines) would take a fifth of the 2 cores from the
 * import it feeds. benches/scale builds it and checks it against the Python generator first.
 *
 *   gcc -O2 -o gen-identifiers benches/gen-identifiers.c
 *   ./gen-identifiers N [PREFIX_COUNT] > ids.jsonl
 */
#include <limits.h>
#include <stdio.h>

/* The value of a string of decimal digits; -1 for anything else or for one too large. */
static long long number(const char *text) {
    long long value = 0;
    if (*text == '\0') return -1;
    for (; *text; text++) {
        if (*text < '0' || *text > '9' || value > (LLONG_MAX - 9) / 10) return -1;
        value = value * 10 + (*text - '0');
    }
    return value;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s N [PREFIX_COUNT]\n", argv[0]);
        return 2;
    }
    long long n = number(argv[1]);
    long long prefixes = argc > 2 ? number(argv[2]) : 16;
    if (n < 0 || prefixes < 1) {
        fprintf(stderr, "N must be a whole number (digits only) and PREFIX_COUNT one above 0\n");
        return 2;
    }
    static char buffer[1 << 20];
    setvbuf(stdout, buffer, _IOFBF, sizeof buffer);
    for (long long i = 0; i < n; i++) {
        if (printf("{\"handle\":\"88.100.%lld/SN-%09lld\",\"values\":["
                   "{\"index\":1,\"type\":\"URL\",\"data\":{\"format\":\"string\",\"value\":\"https://example.com/p/%lld\"},\"ttl\":86400,\"timestamp\":\"2026-11-01T00:00:00Z\"},"
                   "{\"index\":2,\"type\":\"EMAIL\",\"data\":{\"format\":\"string\",\"value\":\"ops@example.com\"},\"ttl\":86400,\"timestamp\":\"2026-11-01T00:00:00Z\"},"
                   "{\"index\":3,\"type\":\"PRODUCT\",\"data\":{\"format\":\"string\",\"value\":\"{\\\"batch\\\":\\\"2026-%02lld\\\",\\\"line\\\":%lld}\"},\"ttl\":86400,\"timestamp\":\"2026-11-01T00:00:00Z\"}]}\n",
                   i % prefixes, i, i, i % 12 + 1, i % 7) < 0) {
            return 1;
        }
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
