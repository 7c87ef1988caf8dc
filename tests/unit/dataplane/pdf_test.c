/*
 * pdf_test: the pieces of PDF routes (core/pdf.h, core/markdown.h, compile/pdf.c, the PDF metrics of core/stats.h):
 * the child's argument vector (sandbox flags always, page flags from the page, never a shell), the document around
 * Markdown (md4c's HTML, the escaped title, the UTF-8 meta), the stylesheet's "</style" made inert in every case,
 * the JSON request form with hostile bodies, the output check, the compiled route with its defaults, the metrics
 * text, and the pool with real wkhtmltopdf children on a real loop: one slot, one queued job that starts when the
 * slot frees, a third refused, a timeout killed, a cancelled job reaped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "dataplane/core/markdown.h"
#include "dataplane/core/pdf.h"
#include "snap_fixture.h"

/* ---------------------------------------------------------------- argv */

static int argv_has(const cph_pdf_argv_t *a, const char *flag, const char *value)
{
    for (size_t i = 0; a->argv[i] != NULL; i++)
        if (strcmp(a->argv[i], flag) == 0 && (value == NULL || (a->argv[i + 1] != NULL && strcmp(a->argv[i + 1], value) == 0)))
            return 1;
    return 0;
}

static void test_argv(void **state)
{
    cph_pdf_page_t page = {CPH_PDF_LETTER, 1, {0, 5, 100, 42}};
    cph_pdf_argv_t a;

    (void)state;
    cph_pdf_argv_build(&a, &page, "Q3 \"report\"; rm -rf /");
    assert_string_equal(a.argv[0], CPH_PDF_BIN);
    assert_true(argv_has(&a, "--disable-javascript", NULL));
    assert_true(argv_has(&a, "--disable-local-file-access", NULL));
    assert_true(argv_has(&a, "--proxy", "http://127.0.0.1:9"));
    assert_true(argv_has(&a, "--page-size", "Letter"));
    assert_true(argv_has(&a, "--orientation", "Landscape"));
    assert_true(argv_has(&a, "-T", "0mm") && argv_has(&a, "-R", "5mm") && argv_has(&a, "-B", "100mm") &&
                argv_has(&a, "-L", "42mm"));
    assert_true(argv_has(&a, "--title", "Q3 \"report\"; rm -rf /")); /* one argument, as given */
    assert_int_equal(a.argc, 27);
    assert_string_equal(a.argv[a.argc - 2], "-");
    assert_string_equal(a.argv[a.argc - 1], "-");
    assert_null(a.argv[a.argc]);

    page = (cph_pdf_page_t){CPH_PDF_A3, 0, {10, 10, 10, 10}};
    cph_pdf_argv_build(&a, &page, NULL);
    assert_false(argv_has(&a, "--title", NULL));
    assert_true(argv_has(&a, "--page-size", "A3") && argv_has(&a, "--orientation", "Portrait"));
    assert_int_equal(a.argc, 25);
    page.size = 200, page.margins_mm[0] = 250; /* out of range: clamped, never past the table */
    cph_pdf_argv_build(&a, &page, NULL);
    assert_true(argv_has(&a, "--page-size", "A4") && argv_has(&a, "-T", "100mm"));
}

/* ---------------------------------------------------------------- documents */

static void test_stylesheet_escaping(void **state)
{
    static const struct {
        const char *css, *want;
    } cases[] = {
        {"p{color:red}", "<style>\np{color:red}\n</style>\n"},
        {"</style><script>x</script>", "<style>\n<\\/style><script>x</script>\n</style>\n"},
        {"a</STYLE>b</sTyLe >c", "<style>\na<\\/STYLE>b<\\/sTyLe >c\n</style>\n"},
        {"</style", "<style>\n<\\/style\n</style>\n"},
        {"</styl", "<style>\n</styl\n</style>\n"},
        {"<</style</style", "<style>\n<<\\/style<\\/style\n</style>\n"},
        {"", ""},
    };

    (void)state;
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); i++) {
        cph_doc_t d = {0};
        cph_markdown_style(&d, cases[i].css, strlen(cases[i].css));
        assert_int_equal(d.len, strlen(cases[i].want));
        if (d.len != 0)
            assert_string_equal(d.base, cases[i].want);
        cph_doc_dispose(&d);
    }
}

static void test_markdown_document(void **state)
{
    cph_doc_t d = {0};
    const char *md = "# Title\n\n*em* and **strong**\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";

    (void)state;
    assert_int_equal(cph_markdown_document(1, md, strlen(md), "A <b> & \"c\"", "h1{}", 4, &d), 0);
    assert_non_null(strstr(d.base, "<meta charset=\"utf-8\">"));
    assert_non_null(strstr(d.base, "<title>A &lt;b&gt; &amp; &quot;c&quot;</title>"));
    assert_non_null(strstr(d.base, "<h1>Title</h1>"));
    assert_non_null(strstr(d.base, "<em>em</em>") && strstr(d.base, "<strong>strong</strong>"));
    assert_non_null(strstr(d.base, "<table>"));
    assert_true(strstr(d.base, "<style>") < strstr(d.base, "<body>"));
    assert_int_equal(strncmp(d.base, "<!DOCTYPE html>", 15), 0);
    cph_doc_dispose(&d);

    assert_int_equal(cph_markdown_document(1, "x", 1, NULL, NULL, 0, &d), 0);
    assert_non_null(strstr(d.base, "<title>Document</title>"));
    assert_null(strstr(d.base, "<style>"));
    cph_doc_dispose(&d);

    /* HTML: used as given, the stylesheet after <head ...>, else in front */
    const char *html = "<html><HEAD lang=en><title>t</title></head><body>b</body></html>";
    assert_int_equal(cph_markdown_document(0, html, strlen(html), NULL, "p{}", 3, &d), 0);
    assert_string_equal(d.base, "<html><HEAD lang=en><style>\np{}\n</style>\n<title>t</title></head><body>b</body></html>");
    cph_doc_dispose(&d);
    assert_int_equal(cph_markdown_document(0, "<header>x</header>", 18, NULL, "p{}", 3, &d), 0);
    assert_string_equal(d.base, "<style>\np{}\n</style>\n<header>x</header>");
    cph_doc_dispose(&d);
    assert_int_equal(cph_markdown_document(0, "", 0, NULL, NULL, 0, &d), 0);
    assert_non_null(d.base);
    assert_int_equal(d.len, 0);
    cph_doc_dispose(&d);
}

static void test_parse_json(void **state)
{
    static const char *const bad[] = {
        "",
        "{",
        "[]",
        "\"html\"",
        "{}",
        "{\"html\":1}",
        "{\"html\":null}",
        "{\"html\":\"a\",\"markdown\":\"b\"}",
        "{\"html\":\"a\",\"css\":\"b\"}",
        "{\"html\":\"a\",\"html\":\"b\"}",
        "{\"html\":\"a\\u0000b\"}",
        "{\"html\":\"a\",\"options\":[]}",
        "{\"html\":\"a\",\"options\":{\"x\":1}}",
        "{\"html\":\"a\",\"options\":{\"page_size\":\"a4\"}}",
        "{\"html\":\"a\",\"options\":{\"page_size\":4}}",
        "{\"html\":\"a\",\"options\":{\"orientation\":\"Landscape\"}}",
        "{\"html\":\"a\",\"options\":{\"margins_mm\":{\"top\":101}}}",
        "{\"html\":\"a\",\"options\":{\"margins_mm\":{\"top\":-1}}}",
        "{\"html\":\"a\",\"options\":{\"margins_mm\":{\"top\":1.5}}}",
        "{\"html\":\"a\",\"options\":{\"margins_mm\":{\"centre\":1}}}",
        "{\"html\":\"a\",\"options\":{\"title\":\"\"}}",
        "{\"html\":\"a\",\"options\":{\"title\":\"t\\u0000\"}}",
        "{\"html\":\"a\",\"options\":{\"stylesheet\":7}}",
    };
    cph_pdf_page_t defaults = {CPH_PDF_A4, 0, {10, 10, 10, 10}};
    cph_pdf_input_t in;
    const char *why;

    (void)state;
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        if (cph_markdown_parse_json(bad[i], strlen(bad[i]), &defaults, &in, &why) == 0)
            fail_msg("accepted %s", bad[i]);
        assert_non_null(why);
        assert_null(in.doc.base);
        assert_null(in.title);
    }
    const char *ok = "{\"markdown\":\"**x**\",\"options\":{\"page_size\":\"Legal\",\"orientation\":\"landscape\","
                     "\"margins_mm\":{\"left\":0,\"bottom\":100},\"title\":\"T\",\"stylesheet\":\"</style>\"}}";
    assert_int_equal(cph_markdown_parse_json(ok, strlen(ok), &defaults, &in, &why), 0);
    assert_int_equal(in.page.size, CPH_PDF_LEGAL);
    assert_int_equal(in.page.landscape, 1);
    assert_int_equal(in.page.margins_mm[0], 10);
    assert_int_equal(in.page.margins_mm[1], 10);
    assert_int_equal(in.page.margins_mm[2], 100);
    assert_int_equal(in.page.margins_mm[3], 0);
    assert_string_equal(in.title, "T");
    assert_non_null(strstr(in.doc.base, "<strong>x</strong>"));
    assert_non_null(strstr(in.doc.base, "<\\/style>"));
    cph_pdf_input_dispose(&in);

    /* a 257-byte title is refused, 256 accepted; a stylesheet past 64 KiB refused */
    char *big = malloc(70000);
    snprintf(big, 70000, "{\"html\":\"a\",\"options\":{\"title\":\"%0256d\"}}", 0);
    assert_int_equal(cph_markdown_parse_json(big, strlen(big), &defaults, &in, &why), 0);
    cph_pdf_input_dispose(&in);
    snprintf(big, 70000, "{\"html\":\"a\",\"options\":{\"title\":\"%0257d\"}}", 0);
    assert_int_equal(cph_markdown_parse_json(big, strlen(big), &defaults, &in, &why), -1);
    snprintf(big, 70000, "{\"html\":\"a\",\"options\":{\"stylesheet\":\"%065537d\"}}", 0);
    assert_int_equal(cph_markdown_parse_json(big, strlen(big), &defaults, &in, &why), -1);
    free(big);
}

static void test_output_valid(void **state)
{
    (void)state;
    assert_true(cph_pdf_output_valid("%PDF-1.4\n...\n%%EOF\n", 19));
    assert_false(cph_pdf_output_valid("%PDF-1.4\n...", 12));
    assert_false(cph_pdf_output_valid("<html>%%EOF", 11));
    assert_false(cph_pdf_output_valid("", 0));
    assert_false(cph_pdf_output_valid("%PDF", 4));
}

/* ---------------------------------------------------------------- compile */

static void test_compile(void **state)
{
    snapfx_t f;
    cph_error_t err;
    const char *json =
        "{" SERVICES ",\"routes\":[" ROUTE("plain", "/a", "") "," ROUTE("doc", "/pdf", ",\"kind\":\"pdf\",\"pdf\":{}") "," ROUTE(
            "src", "/src",
            ",\"kind\":\"pdf\",\"pdf\":{\"mode\":\"source\",\"filename\":\"x.pdf\",\"max_input_bytes\":5,"
            "\"max_output_bytes\":2048,\"timeout_ms\":100,\"defaults\":{\"page_size\":\"A5\","
            "\"orientation\":\"landscape\",\"margins_mm\":{\"top\":1,\"left\":4}}}") "]}";

    (void)state;
    assert_int_equal(snapfx_build(&f, json, cph_pdf_compile, &err), 0);
    assert_int_equal(f.snap.routes[0].kind, CPH_ROUTE_PROXY);
    assert_null(f.snap.routes[0].pdf);
    const cph_pdf_route_t *d = f.snap.routes[1].pdf, *s = f.snap.routes[2].pdf;
    assert_int_equal(f.snap.routes[1].kind, CPH_ROUTE_PDF);
    assert_non_null(d);
    assert_false(d->source);
    assert_string_equal(d->filename, "document.pdf");
    assert_int_equal(d->max_input_bytes, 1048576);
    assert_int_equal(d->max_output_bytes, 20971520);
    assert_int_equal(d->timeout_ms, 30000);
    assert_int_equal(d->defaults.size, CPH_PDF_A4);
    assert_int_equal(d->defaults.landscape, 0);
    for (size_t i = 0; i != 4; i++)
        assert_int_equal(d->defaults.margins_mm[i], 10);
    assert_true(s->source);
    assert_string_equal(s->filename, "x.pdf");
    assert_int_equal(s->max_input_bytes, 5);
    assert_int_equal(s->max_output_bytes, 2048);
    assert_int_equal(s->timeout_ms, 100);
    assert_int_equal(s->defaults.size, CPH_PDF_A5);
    assert_int_equal(s->defaults.landscape, 1);
    assert_int_equal(s->defaults.margins_mm[0], 1);
    assert_int_equal(s->defaults.margins_mm[1], 10);
    assert_int_equal(s->defaults.margins_mm[3], 4);
    snapfx_destroy(&f);

    /* a validator gap is a NACK */
    json = "{" SERVICES ",\"routes\":[" ROUTE("doc", "/pdf", ",\"kind\":\"pdf\",\"pdf\":{\"timeout_ms\":1}") "]}";
    assert_int_equal(snapfx_build(&f, json, cph_pdf_compile, &err), -1);
    assert_string_equal(err.path, "/routes/0/pdf/timeout_ms");
    snapfx_destroy(&f);
    json = "{" SERVICES ",\"routes\":[" ROUTE("doc", "/pdf", ",\"kind\":\"pdf\",\"pdf\":{\"mode\":\"print\"}") "]}";
    assert_int_equal(snapfx_build(&f, json, cph_pdf_compile, &err), -1);
    snapfx_destroy(&f);
}

/* ---------------------------------------------------------------- metrics */

static void test_metrics_text(void **state)
{
    static cph_worker_stats_t a, b;
    cph_worker_stats_t *workers[] = {&a, NULL, &b};
    uint32_t id = cph_stats_route_id("pdf-route");
    char *text;

    (void)state;
    cph_counter_add(&a.pdf_renders[id], 2);
    cph_counter_add(&b.pdf_renders[id], 3);
    cph_counter_add(&b.pdf_failures[CPH_PDF_FAIL_BUSY], 4);
    cph_stats_pdf_observe(&a, 50000);    /* 0.05 s */
    cph_stats_pdf_observe(&b, 300000);   /* 0.3 s */
    cph_stats_pdf_observe(&b, 90000000); /* 90 s: +Inf only */
    text = cph_stats_pdf_exposition(workers, 3, 7);
    assert_non_null(strstr(text, "cephalo_dp_pdf_renders_total{route=\"pdf-route\"} 5\n"));
    assert_non_null(strstr(text, "cephalo_dp_pdf_failures_total{reason=\"busy\"} 4\n"));
    assert_non_null(strstr(text, "cephalo_dp_pdf_failures_total{reason=\"timeout\"} 0\n"));
    assert_non_null(strstr(text, "cephalo_dp_pdf_queue_depth 7\n"));
    assert_non_null(strstr(text, "cephalo_dp_pdf_render_seconds_bucket{le=\"0.1\"} 1\n"));
    assert_non_null(strstr(text, "cephalo_dp_pdf_render_seconds_bucket{le=\"0.25\"} 1\n"));
    assert_non_null(strstr(text, "cephalo_dp_pdf_render_seconds_bucket{le=\"0.5\"} 2\n"));
    assert_non_null(strstr(text, "cephalo_dp_pdf_render_seconds_bucket{le=\"60\"} 2\n"));
    assert_non_null(strstr(text, "cephalo_dp_pdf_render_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(text, "cephalo_dp_pdf_render_seconds_count 3\n"));
    assert_non_null(strstr(text, "cephalo_dp_pdf_render_seconds_sum 90.350000\n"));
    free(text);
}

/* ---------------------------------------------------------------- the pool, with real children */

typedef struct st_outcome_t {
    int done, order;
    cph_pdf_result_t result;
    size_t len;
    int alive; /* what the alive callback answers */
} outcome_t;

static int finished;

static void on_done(void *ud, cph_pdf_result_t result, h2o_iovec_t pdf, uint64_t render_us)
{
    outcome_t *o = ud;

    (void)render_us;
    assert_false(o->done);
    o->done = 1;
    o->order = ++finished;
    o->result = result;
    o->len = pdf.len;
    if (result == CPH_PDF_OK)
        assert_true(cph_pdf_output_valid(pdf.base, pdf.len));
}

static int is_alive(void *ud)
{
    return ((outcome_t *)ud)->alive;
}

static cph_pdf_job_t *job(h2o_evloop_t *loop, outcome_t *o, uint64_t timeout_ms, uint64_t max_output, const char *html)
{
    cph_pdf_spec_t spec = {.page = {CPH_PDF_A4, 0, {10, 10, 10, 10}},
                           .title = "t",
                           .max_output_bytes = max_output,
                           .timeout_ms = timeout_ms,
                           .on_done = on_done,
                           .alive = is_alive,
                           .ud = o};

    *o = (outcome_t){.alive = 1};
    return cph_pdf_job_create(loop, &spec, strdup(html), strlen(html));
}

/* Runs the loop until cond(ud) or 60 s (a failure). */
static void run_until(h2o_evloop_t *loop, int (*cond)(void *), void *ud)
{
    for (int i = 0; i < 6000 && !cond(ud); i++)
        h2o_evloop_run(loop, 10);
    assert_true(cond(ud));
}

static int is_done(void *ud)
{
    return ((outcome_t *)ud)->done;
}

static int pool_idle(void *ud)
{
    (void)ud;
    return cph_pdf_running() == 0 && cph_pdf_queue_depth() == 0;
}

static void assert_no_children(void)
{
    int st;
    assert_int_equal(waitpid(-1, &st, WNOHANG), -1); /* ECHILD: every child was reaped, none is a zombie */
}

static void test_pool_queue_and_handoff(void **state)
{
    h2o_evloop_t *loop = h2o_evloop_create();
    outcome_t a, b, c;
    cph_pdf_job_t *ja, *jb, *jc;

    (void)state;
    cph_pdf_pool_configure(1, 1);
    ja = job(loop, &a, 60000, 20u << 20, "<p>first</p>");
    jb = job(loop, &b, 60000, 20u << 20, "<p>second</p>");
    jc = job(loop, &c, 60000, 20u << 20, "<p>third</p>");
    assert_int_equal(cph_pdf_job_submit(ja), 0);
    assert_int_equal(cph_pdf_job_submit(jb), 0);
    assert_int_equal(cph_pdf_queue_depth(), 1);
    assert_int_equal(cph_pdf_job_submit(jc), -1); /* one running, one waiting: full */
    cph_pdf_job_cancel(jc);
    assert_int_equal(cph_pdf_running(), 1);
    run_until(loop, is_done, &b);
    assert_true(a.done && a.order < b.order);
    assert_int_equal(a.result, CPH_PDF_OK);
    assert_int_equal(b.result, CPH_PDF_OK);
    assert_true(a.len > 1000);
    assert_false(c.done);
    run_until(loop, pool_idle, NULL);
    assert_no_children();
    h2o_evloop_run(loop, 0);
    h2o_evloop_destroy(loop);
}

static void test_pool_kills(void **state)
{
    h2o_evloop_t *loop = h2o_evloop_create();
    outcome_t t, big, x, y, z;
    cph_pdf_job_t *jx, *jy, *jz;

    (void)state;
    cph_pdf_pool_configure(2, 4);
    /* the deadline: killed, 504's result */
    assert_int_equal(cph_pdf_job_submit(job(loop, &t, 100, 20u << 20, "<p>slow</p>")), 0);
    /* output past the cap: killed */
    assert_int_equal(cph_pdf_job_submit(job(loop, &big, 60000, 1024, "<p>a document larger than a kilobyte once rendered</p>")), 0);
    run_until(loop, is_done, &t);
    run_until(loop, is_done, &big);
    assert_int_equal(t.result, CPH_PDF_FAIL_TIMEOUT);
    assert_int_equal(big.result, CPH_PDF_FAIL_TOO_LARGE);
    run_until(loop, pool_idle, NULL);

    /* cancelled while running, cancelled while queued, and nobody alive any more: no callback, or CANCELLED */
    cph_pdf_pool_configure(1, 4);
    jx = job(loop, &x, 60000, 20u << 20, "<p>x</p>");
    jy = job(loop, &y, 60000, 20u << 20, "<p>y</p>");
    jz = job(loop, &z, 60000, 20u << 20, "<p>z</p>");
    assert_int_equal(cph_pdf_job_submit(jx), 0);
    assert_int_equal(cph_pdf_job_submit(jy), 0);
    assert_int_equal(cph_pdf_job_submit(jz), 0);
    assert_int_equal(cph_pdf_queue_depth(), 2);
    cph_pdf_job_cancel(jy);
    assert_int_equal(cph_pdf_queue_depth(), 1);
    z.alive = 0; /* the waiting client left: the tick drops it */
    h2o_evloop_run(loop, 10);
    cph_pdf_job_cancel(jx);
    run_until(loop, is_done, &z);
    assert_int_equal(z.result, CPH_PDF_CANCELLED);
    run_until(loop, pool_idle, NULL);
    assert_false(x.done || y.done);
    assert_no_children();
    h2o_evloop_run(loop, 0);
    h2o_evloop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argv),
        cmocka_unit_test(test_stylesheet_escaping),
        cmocka_unit_test(test_markdown_document),
        cmocka_unit_test(test_parse_json),
        cmocka_unit_test(test_output_valid),
        cmocka_unit_test(test_compile),
        cmocka_unit_test(test_metrics_text),
        cmocka_unit_test(test_pool_queue_and_handoff),
        cmocka_unit_test(test_pool_kills),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
