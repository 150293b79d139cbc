/* SPDX-License-Identifier: MIT */
/*
 * test_accept.c - accept.c: appsrv__accepts_gzip() on Accept-Encoding
 * values (RFC 9110 §12.5.3): q-values, "*", x-gzip, case, whitespace,
 * empty members, and malformed values (always false, never a read past
 * the given length: every input sits at the very end of a readable page
 * followed by an unreadable one).
 */
#include <criterion/criterion.h>

#include <string.h>

#include "accept.h"
#include "guard.h"

#define TMO .timeout = 10

/* Calls appsrv__accepts_gzip on a copy of s that ends where a PROT_NONE
 * page begins (guard.h), so an over-read crashes the test. */
static bool accepts(const char *s)
{
    guard_t g;
    guard_init(&g, 256);
    size_t len = strlen(s);
    bool r = appsrv__accepts_gzip(guard_place(&g, s, len), len);
    guard_dispose(&g);
    return r;
}

#define YES(s) cr_expect(accepts(s), "expected gzip acceptable for \"%s\"", s)
#define NO(s) cr_expect(!accepts(s), "expected gzip not acceptable for \"%s\"", s)

Test(accept, plain_lists, TMO)
{
    YES("gzip");
    YES("gzip, deflate, br");
    YES("br,gzip");
    YES("deflate, gzip, zstd");
    YES("x-gzip");
    NO("deflate");
    NO("br, zstd");
    NO("identity");
    NO("gzipx");
    NO("gzi");
    NO("xgzip");
}

Test(accept, case_insensitive, TMO)
{
    YES("GZIP");
    YES("GZip;Q=1");
    YES("X-GZIP");
    NO("GZIP;Q=0");
}

Test(accept, qvalues, TMO)
{
    YES("gzip;q=1");
    YES("gzip;q=1.");
    YES("gzip;q=1.0");
    YES("gzip;q=1.000");
    YES("gzip;q=0.001");
    YES("gzip;q=0.5");
    NO("gzip;q=0");
    NO("gzip;q=0.");
    NO("gzip;q=0.0");
    NO("gzip;q=0.000");
    YES("gzip ; q=0.8");
    YES("gzip\t;\tq=0.8 , br");
    YES("br;q=1.0, gzip;q=0.8, *;q=0.1");
}

Test(accept, star, TMO)
{
    YES("*");
    YES("*;q=0.1");
    NO("*;q=0");
    NO("br, *;q=0");
    YES("gzip, *;q=0");       /* the explicit member decides */
    NO("gzip;q=0, *");        /* same */
    NO("*;q=0, gzip;q=0.000");
    YES("*, identity;q=0");
}

Test(accept, identity_irrelevant, TMO)
{
    YES("gzip, identity;q=0");
    YES("identity;q=0, gzip");
    NO("identity;q=0");
    NO("identity;q=0, *;q=0");
}

Test(accept, several_gzip_members_highest_wins, TMO)
{
    YES("gzip;q=0, x-gzip");
    YES("x-gzip;q=0, gzip;q=0.2");
    NO("gzip;q=0, x-gzip;q=0");
}

Test(accept, empty_members_and_whitespace, TMO)
{
    YES(", gzip");
    YES("gzip ,");
    YES(" , , gzip , ,");
    YES("  gzip  ");
    NO("");
    NO("   ");
    NO(",");
    NO(" , ,");
    cr_expect(!appsrv__accepts_gzip(NULL, 0));
    cr_expect(!appsrv__accepts_gzip(NULL, 4));
}

Test(accept, malformed_is_false, TMO)
{
    NO("gzip;q=1.5");
    NO("gzip;q=1.001");
    NO("gzip;q=2");
    NO("gzip;q=0.0001");
    NO("gzip;q=-1");
    NO("gzip;q=");
    NO("gzip;q");
    NO("gzip;");
    NO("gzip;;q=1");
    NO("gzip;q =1");
    NO("gzip;q= 1");
    NO("gzip;level=1");
    NO("gzip;q=1;q=1");
    NO("gzip;q=0.5x");
    NO("gzip q=1");
    NO("gzip br");
    NO("\"gzip\"");
    NO("gzip, @");
    NO("gzip, br;q=x");
    NO("gzip\x01");
    NO("g\xffzip, gzip");
    NO(";q=1");
    NO("gzip;q=.5");
}

/* A NUL inside the given length is a stray character, not the end. */
Test(accept, embedded_nul_is_malformed, TMO)
{
    cr_expect(!appsrv__accepts_gzip("gzip\0, br", 9));
    cr_expect(appsrv__accepts_gzip("gzip\0, br", 4));
}

/* Every prefix and every single-byte corruption of a long valid value:
 * no crash, no over-read (the guard page), an answer either way. */
Test(accept, prefixes_and_corruptions_never_crash, TMO)
{
    const char *v = "br;q=1.0, gzip;q=0.800, x-gzip ;q=0.5 , *;q=0, identity;q=0";
    size_t n = strlen(v);
    char buf[128];
    int yes = 0;
    for (size_t k = 0; k <= n; k++) {
        memcpy(buf, v, k);
        buf[k] = '\0';
        yes += accepts(buf);
        for (int c = 0; c < 256; c += 37) {
            if (k == n)
                break;
            memcpy(buf, v, n + 1);
            buf[k] = (char)c;
            yes += accepts(buf);
        }
    }
    cr_expect(accepts(v));
    cr_expect_gt(yes, 0);
}
