/*
 * b64url_test: cph_b64url_decode and cph_b64url_encode, the one strict unpadded base64url (RFC 7515 section 2) of
 * both planes. The RFC 4648 vectors in the URL alphabet, every length mod 4, the refusals that make each byte string
 * have one spelling (spare bits, '=', the standard alphabet, whitespace), the caps, and round trips across the
 * chunk boundaries up to 1 MB. Outputs are malloc'd at their exact size so ASan catches any overrun.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "proto/proto.h"

/* Decodes the NUL-terminated s into a buffer of exactly cap bytes; the result of cph_b64url_decode. */
static long decode_cap(const char *s, size_t cap, unsigned char **out)
{
    unsigned char *buf = malloc(cap > 0 ? cap : 1);
    long n;

    assert_non_null(buf);
    n = cph_b64url_decode(s, strlen(s), buf, cap);
    if (out != NULL)
        *out = buf;
    else
        free(buf);
    return n;
}

/* Decodes s with no cap to speak of, and checks the count-only mode agrees. */
static long decode(const char *s)
{
    long n = decode_cap(s, strlen(s), NULL);

    assert_int_equal(cph_b64url_decode(s, strlen(s), NULL, SIZE_MAX), n);
    return n;
}

/* Encodes in[0..len) into a buffer of exactly CPH_B64URL_ENCODE_CAP(len) bytes (caller frees). */
static char *encode(const unsigned char *in, size_t len)
{
    char *out = malloc(CPH_B64URL_ENCODE_CAP(len));
    size_t n;

    assert_non_null(out);
    n = cph_b64url_encode(in, len, out, CPH_B64URL_ENCODE_CAP(len));
    assert_int_equal(n, strlen(out));
    assert_int_equal(n, len / 3 * 4 + (len % 3 != 0 ? len % 3 + 1 : 0));
    assert_int_equal(strspn(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), n);
    return out;
}

/* Encodes then decodes in[0..len) and checks both the bytes and that the decoded length is exact. */
static void round_trip(const unsigned char *in, size_t len)
{
    char *s = encode(in, len);
    unsigned char *back;

    assert_int_equal(decode_cap(s, len, &back), (long)len);
    assert_memory_equal(back, in, len);
    assert_int_equal(CPH_B64URL_DECODED_LEN(strlen(s)), len);
    free(back);
    free(s);
}

/* Deterministic pseudo-random bytes (xorshift), so a failure reproduces. */
static void fill(unsigned char *buf, size_t len, uint32_t seed)
{
    for (size_t i = 0; i != len; ++i) {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        buf[i] = (unsigned char)seed;
    }
}

static void test_rfc4648_vectors(void **state)
{
    static const char *const vectors[][2] = {
        {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
    };
    (void)state;
    for (size_t i = 0; i != sizeof(vectors) / sizeof(vectors[0]); ++i) {
        const char *plain = vectors[i][0], *coded = vectors[i][1];
        unsigned char *bin;
        char *s = encode((const unsigned char *)plain, strlen(plain));

        assert_string_equal(s, coded);
        assert_int_equal(decode_cap(coded, strlen(plain), &bin), (long)strlen(plain));
        assert_memory_equal(bin, plain, strlen(plain));
        free(bin);
        free(s);
    }
}

/* The two characters that differ from the standard alphabet, in every position of a group. */
static void test_url_alphabet(void **state)
{
    static const unsigned char minus[] = {0xfb, 0xef, 0xbe}, underscore[] = {0xff, 0xff, 0xff}, mixed[] = {0xfb, 0xff};
    unsigned char *bin;
    char *s;

    (void)state;
    assert_string_equal(s = encode(minus, 3), "----");
    free(s);
    assert_string_equal(s = encode(underscore, 3), "____");
    free(s);
    assert_string_equal(s = encode(mixed, 2), "-_8"); /* standard: "+/8=" */
    free(s);
    assert_int_equal(decode_cap("-_8", 2, &bin), 2);
    assert_memory_equal(bin, mixed, 2);
    free(bin);
}

/* 4k characters -> 3k bytes, 4k + 2 -> 3k + 1, 4k + 3 -> 3k + 2, 4k + 1 is impossible. */
static void test_every_length_mod_4(void **state)
{
    static const char *const accepted[] = {"", "AA", "AAA", "AAAA", "AAAAAA", "AAAAAAA", "AAAAAAAA"};
    static const long lengths[] = {0, 1, 2, 3, 4, 5, 6};
    static const char *const refused[] = {"A", "AAAAA", "AAAAAAAAA", "Zm9vY"};
    (void)state;
    for (size_t i = 0; i != sizeof(accepted) / sizeof(accepted[0]); ++i)
        assert_int_equal(decode(accepted[i]), lengths[i]);
    for (size_t i = 0; i != sizeof(refused) / sizeof(refused[0]); ++i)
        assert_int_equal(decode(refused[i]), -1);
}

/* Only a last character whose unused low bits are zero passes: 4 of 64 after one character, 16 after two. */
static void test_spare_bits_refused(void **state)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int ok2 = 0, ok3 = 0;

    (void)state;
    for (int v = 0; v != 64; ++v) {
        char two[] = {'Z', alphabet[v], '\0'}, three[] = {'Z', 'm', alphabet[v], '\0'};
        long n2 = decode(two), n3 = decode(three);
        assert_int_equal(n2, (v & 0x0f) == 0 ? 1 : -1);
        assert_int_equal(n3, (v & 0x03) == 0 ? 2 : -1);
        ok2 += n2 == 1;
        ok3 += n3 == 2;
    }
    assert_int_equal(ok2, 4);
    assert_int_equal(ok3, 16);
    assert_int_equal(decode("Zh"), -1);  /* "f" is "Zg" */
    assert_int_equal(decode("Zm9"), -1); /* "fo" is "Zm8" */
    assert_int_equal(decode("AAAAZh"), -1);
}

static void test_padding_and_other_characters_refused(void **state)
{
    static const char *const refused[] = {
        "Zg==",
        "Zm8=",
        "Zg=",
        "=",
        "====",
        "Zm9v====",
        "Zg==Zm9v",
        "Zm=v", /* padding anywhere */
        "+/8",
        "Zm9+",
        "Zm9/",
        "////",
        "++++", /* the standard alphabet */
        " Zg",
        "Zg ",
        "Zm\n9v",
        "Zm9v\r\n",
        "Zm\t8",
        "Zm.8",
        "Zm%8",
        "Zm*v",
        "\xc3\xa9"
        "AA", /* anything else */
    };
    (void)state;
    for (size_t i = 0; i != sizeof(refused) / sizeof(refused[0]); ++i)
        assert_int_equal(decode(refused[i]), -1);
    assert_int_equal(cph_b64url_decode("Zm\0v", 4, NULL, SIZE_MAX), -1); /* an embedded NUL */
}

static void test_cap(void **state)
{
    unsigned char *bin;

    (void)state;
    assert_int_equal(decode_cap("Zm9vYmFy", 5, NULL), -1);
    assert_int_equal(decode_cap("Zm9vYmFy", 6, &bin), 6);
    assert_memory_equal(bin, "foobar", 6);
    free(bin);
    assert_int_equal(decode_cap("Zm9vYmE", 4, NULL), -1);
    assert_int_equal(decode_cap("Zm9vYmE", 5, NULL), 5);
    assert_int_equal(decode_cap("Zg", 0, NULL), -1);
    assert_int_equal(cph_b64url_decode("Zm9vYmFy", 8, NULL, 5), -1); /* the cap bounds the count-only mode too */
    assert_int_equal(cph_b64url_decode("Zm9vYmFy", 8, NULL, 6), 6);
    assert_int_equal(CPH_B64URL_DECODED_LEN(8), 6);
    assert_int_equal(CPH_B64URL_DECODED_LEN(7), 5);
    assert_int_equal(CPH_B64URL_DECODED_LEN(6), 4);
}

static void test_empty(void **state)
{
    unsigned char byte = 0xaa;
    char out[1] = {'x'};

    (void)state;
    assert_int_equal(cph_b64url_decode("", 0, &byte, 0), 0);
    assert_int_equal(cph_b64url_decode("", 0, NULL, 0), 0);
    assert_int_equal(byte, 0xaa);
    assert_int_equal(cph_b64url_encode(&byte, 0, out, sizeof(out)), 0);
    assert_int_equal(out[0], '\0');
}

/* Round trips at and around the chunk sizes, a character refused beyond the first chunk, then 1 MB (and 1 MB + 1). */
static void test_long_inputs(void **state)
{
    static const size_t lengths[] = {1, 2, 3, 4, 5, 765, 766, 767, 768, 769, 770, 771, 1535, 1536, 1537, 2304, 4097};
    size_t big = 1024 * 1024 + 1;
    unsigned char *buf = malloc(big);
    char *s;

    (void)state;
    assert_non_null(buf);
    for (size_t i = 0; i != sizeof(lengths) / sizeof(lengths[0]); ++i) {
        fill(buf, lengths[i], (uint32_t)(i + 1));
        round_trip(buf, lengths[i]);
    }
    fill(buf, 3000, 7);
    s = encode(buf, 3000);
    s[2500] = '+';
    assert_int_equal(decode(s), -1);
    s[2500] = '=';
    assert_int_equal(decode(s), -1);
    free(s);
    fill(buf, big, 42);
    round_trip(buf, big - 1);
    round_trip(buf, big);
    free(buf);
}

/* Every byte value in every position of a group. */
static void test_all_byte_values(void **state)
{
    unsigned char all[256 + 2];
    char *s;

    (void)state;
    for (int i = 0; i != 256; ++i)
        all[i] = (unsigned char)i;
    all[256] = 0xff;
    all[257] = 0x00;
    for (size_t off = 0; off != 3; ++off)
        round_trip(all + off, 256);
    s = encode(all, 256);
    assert_int_equal(strlen(s), 342);
    assert_int_equal(strncmp(s, "AAECAwQFBgcICQoLDA0ODx", 22), 0);
    assert_string_equal(s + 342 - 6, "_P3-_w");
    free(s);
}

/* Random strings of the alphabet: whatever the decoder accepts, the encoder spells back exactly. */
static void test_accepted_strings_are_canonical(void **state)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char rnd[64], bin[48];
    char s[65];
    int accepted = 0;

    (void)state;
    for (uint32_t seed = 1; seed != 20000; ++seed) {
        size_t len = seed % 64;
        long n;
        char *again;
        fill(rnd, len, seed);
        for (size_t i = 0; i != len; ++i)
            s[i] = alphabet[rnd[i] % 64];
        s[len] = '\0';
        if ((n = cph_b64url_decode(s, len, bin, sizeof(bin))) < 0)
            continue;
        ++accepted;
        again = encode(bin, (size_t)n);
        assert_string_equal(again, s);
        free(again);
    }
    assert_true(accepted > 1000);
}

/* A cap below CPH_B64URL_ENCODE_CAP is the caller's bug: cph_fatal aborts, even when the unpadded text would fit. */
static void test_encode_small_cap_aborts(void **state)
{
    static const size_t caps[] = {0, 4, 7, 8};
    (void)state;
    for (size_t i = 0; i != sizeof(caps) / sizeof(caps[0]); ++i) {
        int status = 0;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            char out[16];
            if (freopen("/dev/null", "w", stderr) == NULL)
                _exit(0);
            cph_b64url_encode((const unsigned char *)"foob", 4, out, caps[i]); /* "Zm9vYg": 6 + 1, but needs 9 */
            _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_url_alphabet),
        cmocka_unit_test(test_every_length_mod_4),
        cmocka_unit_test(test_spare_bits_refused),
        cmocka_unit_test(test_padding_and_other_characters_refused),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_long_inputs),
        cmocka_unit_test(test_all_byte_values),
        cmocka_unit_test(test_accepted_strings_are_canonical),
        cmocka_unit_test(test_encode_small_cap_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
