/*
 * pdf: the renders of routes of kind "pdf" (PROTOCOL.md section 5, "pdf route"; docs/dataplane.md "PDF routes").
 *
 * A render is one wkhtmltopdf child process fed HTML on its stdin and read back from its stdout, with every pipe
 * non-blocking on the event loop of the worker that took the request: the loop never waits for a render. The child
 * runs sandboxed (no JavaScript, no local files, a dead proxy for every URL, a fresh private temp dir, rlimits, its
 * own process group) and is killed with its group on timeout, on an output past the route's cap, or when the
 * request is cancelled. Renders are bounded per process: at most `workers` children at once across all worker
 * threads, and at most `queue` renders waiting for one; past that a submit is refused (the caller answers 503).
 */
#ifndef CPH_PDF_H
#define CPH_PDF_H

#include <stdint.h>
#include "dataplane/core/h2o_abi.h"
#include "dataplane/core/stats.h"

#define CPH_PDF_BIN "/usr/bin/wkhtmltopdf"
#define CPH_PDF_DEFAULT_QUEUE 16
#define CPH_PDF_WORKERS_MAX 64
#define CPH_PDF_QUEUE_MAX 1024
#define CPH_PDF_TITLE_MAX 256                /* bytes */
#define CPH_PDF_STYLESHEET_MAX (64 * 1024)   /* bytes */
#define CPH_PDF_RLIMIT_AS (2ull << 30)       /* wkhtmltopdf's WebKit reserves ~1.3 GiB of address space at start */
#define CPH_PDF_DEFAULT_MAX_INPUT 1048576ull /* route defaults (compile/pdf.c) */
#define CPH_PDF_DEFAULT_MAX_OUTPUT 20971520ull
#define CPH_PDF_DEFAULT_TIMEOUT_MS 30000ull
#define CPH_PDF_DEFAULT_FILENAME "document.pdf"

/** Page sizes, in the order of cph_pdf_page_size_names. */
typedef enum en_cph_pdf_page_size_t { CPH_PDF_A3 = 0, CPH_PDF_A4, CPH_PDF_A5, CPH_PDF_LETTER, CPH_PDF_LEGAL } cph_pdf_page_size_t;
/** "A3", "A4", "A5", "Letter", "Legal", NULL: the schema's spelling, which is also wkhtmltopdf's. */
extern const char *const cph_pdf_page_size_names[];

/** The page of one render: the route's defaults, then the request's options. */
typedef struct st_cph_pdf_page_t {
    uint8_t size;          /* cph_pdf_page_size_t */
    uint8_t landscape;     /* 0 portrait */
    uint8_t margins_mm[4]; /* top, right, bottom, left: 0-100 */
} cph_pdf_page_t;

/** A route's "pdf" object, compiled (compile/pdf.c); lives in the snapshot's arena. */
typedef struct st_cph_pdf_route_t {
    int source; /* mode "source": GET renders the HTML the service answers; else "render" */
    const char *filename;
    uint64_t max_input_bytes, max_output_bytes, timeout_ms;
    cph_pdf_page_t defaults;
} cph_pdf_route_t;

#define CPH_PDF_ARGV_MAX 32
/** The child's argument vector and the storage its margin strings point into. */
typedef struct st_cph_pdf_argv_t {
    char *argv[CPH_PDF_ARGV_MAX]; /* NULL-terminated; argv[0] is CPH_PDF_BIN */
    char margins[4][8];
    size_t argc;
} cph_pdf_argv_t;

/**
 * Builds the wkhtmltopdf argument vector for page and title (NULL: none; a C string, so without NUL bytes): the
 * sandbox flags, the page flags, then "- -" (HTML on stdin, PDF on stdout). Pointers into title stay borrowed.
 */
void cph_pdf_argv_build(cph_pdf_argv_t *a, const cph_pdf_page_t *page, const char *title);

/** Whether out is a whole PDF document: "%PDF-" first and "%%EOF" within its last 1 KiB. */
int cph_pdf_output_valid(const char *out, size_t len);

/* ---------------------------------------------------------------- the pool */

/**
 * Sets the process' bounds (before any render; main.c from --pdf-workers / --pdf-queue): workers 1-64 concurrent
 * children, queue 0-1024 renders waiting. Defaults until called: 1 worker, CPH_PDF_DEFAULT_QUEUE.
 */
void cph_pdf_pool_configure(unsigned workers, unsigned queue);
/** Renders waiting for a slot right now (the cephalo_dp_pdf_queue_depth gauge). Any thread. */
uint64_t cph_pdf_queue_depth(void);
/** Children running right now (slots held, including killed children not yet reaped). Any thread. */
uint64_t cph_pdf_running(void);

typedef struct st_cph_pdf_job_t cph_pdf_job_t;

/** A render's end. result is CPH_PDF_OK or the failure; pdf is the output on CPH_PDF_OK (valid during the call). */
typedef void (*cph_pdf_done_cb)(void *ud, cph_pdf_result_t result, h2o_iovec_t pdf, uint64_t render_us);
/** Polled every 100 ms while a job waits or runs: 0 = nobody wants the result (the job ends CPH_PDF_CANCELLED). */
typedef int (*cph_pdf_alive_cb)(void *ud);

typedef struct st_cph_pdf_spec_t {
    cph_pdf_page_t page;
    const char *title; /* NULL or a C string of 1-256 bytes (copied) */
    uint64_t max_output_bytes, timeout_ms;
    cph_pdf_done_cb on_done;
    cph_pdf_alive_cb alive; /* may be NULL */
    void *ud;
} cph_pdf_spec_t;

/**
 * A job rendering html[0..len) (a malloc'd buffer the job now owns) on loop (the calling worker's), not started.
 * Then cph_pdf_job_submit() it, or cph_pdf_job_cancel() it.
 */
cph_pdf_job_t *cph_pdf_job_create(h2o_loop_t *loop, const cph_pdf_spec_t *spec, char *html, size_t len);
/**
 * Starts the job when a slot is free, else queues it (a slot freed on any thread wakes it through its own eventfd).
 * Returns -1 when every slot is taken and the queue is full: nothing happened, the caller cancels the job. Returns 0
 * otherwise: on_done is called exactly once later (or already, for a child that could not be spawned), on the loop.
 */
int cph_pdf_job_submit(cph_pdf_job_t *job);
/**
 * Drops a job whose result nobody wants: a waiting job leaves the queue, a running child is killed with its group;
 * on_done is never called after this. The job frees itself (and its slot) once the child is reaped.
 */
void cph_pdf_job_cancel(cph_pdf_job_t *job);

#endif
