/*
 * accesslog_test: the access log's JSON escaper against hostile bytes, the sampling rule (5xx and 429 always), the
 * ring dropping and counting lines when full, and the writer thread flushing every recorded line on close.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include "dataplane/core/accesslog.h"

static void test_escape_hostile(void **state)
{
    (void)state;
    const char in[] = "a\"b\\c\n\r\t\x01\x7f\xff</script>";
    char out[128], wrapped[160];
    size_t n = cph_accesslog_escape(out, sizeof(out), in, sizeof(in) - 1);
    assert_true(n <= sizeof(out));
    snprintf(wrapped, sizeof(wrapped), "[\"%.*s\"]", (int)n, out);
    json_error_t jerr;
    json_t *j = json_loads(wrapped, 0, &jerr);
    assert_non_null(j);
    const char *s = json_string_value(json_array_get(j, 0));
    assert_non_null(s);
    assert_non_null(strstr(s, "a\"b\\c\n\r\t"));
    assert_null(strchr(out, '\n'));
    for (size_t i = 0; i != n; ++i)
        assert_true((unsigned char)out[i] >= 0x20 && (unsigned char)out[i] < 0x7f);
    json_decref(j);
    /* too small an output: reported, never overrun */
    char small[8];
    assert_int_equal(cph_accesslog_escape(small, sizeof(small), in, sizeof(in) - 1), sizeof(small) + 1);
}

/* The escape written byte by byte, as the format is specified: a reference for the run-copying one. */
static size_t reference_escape(char *out, const unsigned char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (size_t i = 0; i != len; ++i) {
        if (s[i] == '"' || s[i] == '\\')
            out[o++] = '\\', out[o++] = (char)s[i];
        else if (s[i] < 0x20 || s[i] >= 0x7f)
            memcpy(out + o, "\\u00", 4), out[o + 4] = hex[s[i] >> 4], out[o + 5] = hex[s[i] & 15], o += 6;
        else
            out[o++] = (char)s[i];
    }
    return o;
}

static void test_escape_matches_reference(void **state)
{
    unsigned char in[64];
    char want[64 * 6], got[64 * 6 + 8];
    uint32_t x = 12345;

    (void)state;
    for (int round = 0; round != 5000; ++round) {
        size_t len = (size_t)(round % 65);
        for (size_t i = 0; i != len; ++i) {
            x = x * 1103515245 + 12345;
            in[i] = (unsigned char)(round % 3 == 0 ? 'a' + (x >> 16) % 26 : x >> 16); /* plain runs and hostile bytes */
        }
        size_t n = reference_escape(want, in, len);
        /* room to the byte: fits; one byte less: reported short, nothing written past cap */
        assert_int_equal(cph_accesslog_escape(got, n, (const char *)in, len), n);
        assert_memory_equal(got, want, n);
        if (n != 0) {
            memset(got, '#', sizeof(got));
            assert_int_equal(cph_accesslog_escape(got, n - 1, (const char *)in, len), n);
            assert_true(got[n - 1] == '#');
        }
    }
}

static void test_ring_full_drops(void **state)
{
    (void)state;
    char line[1000];
    memset(line, 'x', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\n';
    uint64_t before = cph_accesslog_dropped();
    size_t ok = 0;
    for (int i = 0; i != 1100; ++i)
        if (cph_accesslog_push(line, sizeof(line)) == 0)
            ++ok;
    assert_int_equal(ok, (1u << 20) / sizeof(line));
    assert_int_equal(cph_accesslog_dropped() - before, 1100 - ok);

    /* the writer drains what the ring holds, and close flushes the rest */
    char path[] = "/tmp/accesslog_test_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    cph_error_t err;
    assert_int_equal(cph_accesslog_open(path, 1, &err), 0);
    assert_int_equal(cph_accesslog_enabled, 1);
    assert_int_equal(cph_accesslog_push("{\"last\":1}\n", 11), 0);
    cph_accesslog_close();
    assert_int_equal(cph_accesslog_enabled, 0);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    assert_int_equal(ftell(fp), (long)(ok * sizeof(line) + 11));
    fclose(fp);
    unlink(path);
}

static void test_sampling(void **state)
{
    (void)state;
    cph_error_t err;
    assert_int_equal(cph_accesslog_open("/dev/null", 0.25, &err), 0);
    int logged = 0;
    for (int i = 0; i != 4000; ++i) {
        logged += cph_accesslog_sampled(200);
        assert_int_equal(cph_accesslog_sampled(429), 1);
        assert_int_equal(cph_accesslog_sampled(502), 1);
    }
    assert_true(logged > 800 && logged < 1200); /* ~1000 of 4000 */
    cph_accesslog_close();
    assert_int_equal(cph_accesslog_open("/dev/null", 0, &err), -1);
    assert_int_equal(cph_accesslog_open("/dev/null", 1.5, &err), -1);
    assert_int_equal(cph_accesslog_open("off", 1, &err), 0);
    assert_int_equal(cph_accesslog_enabled, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_hostile),
        cmocka_unit_test(test_escape_matches_reference),
        cmocka_unit_test(test_ring_full_drops),
        cmocka_unit_test(test_sampling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
