/*
 * pdf: the render pool and the wkhtmltopdf children of routes of kind "pdf" (core/pdf.h).
 *
 * Slots. One mutex guards the process' slot count and the list of waiting jobs. A job takes a free slot at submit,
 * or waits in the list (bounded), or is refused. A job that ends - on whatever thread - hands its slot straight to
 * the oldest waiting job, marking it granted and writing to that job's own eventfd, which sits on the waiting job's
 * worker loop as an h2o socket: the waiting thread wakes exactly when it may start, with no polling and no receiver
 * to register on the worker. Only the releasing thread writes a waiter's eventfd, and only while holding the mutex
 * with the waiter still listed, so a waiter that is cancelled meanwhile (it unlinks itself under the same mutex, or
 * passes on a slot it was already granted) never sees a write to a closed descriptor. A slot is held until the child
 * is reaped, so a killed child that takes time to die still counts against the bound.
 *
 * Children. fork + execve of an argument vector built before the fork (the child calls async-signal-safe functions
 * only): its own process group, stdin/stdout/stderr on pipes, every other descriptor closed, a fresh mkdtemp
 * directory as cwd, HOME, TMPDIR and XDG_RUNTIME_DIR, a minimal environment, the signal mask and SIGPIPE reset, and
 * rlimits on address space, CPU time, open files and file size. The parent's pipe ends are non-blocking h2o sockets
 * on the worker's loop: the HTML is written to stdin, stdout is collected up to the route's cap, stderr is drained.
 * A 100 ms tick enforces the deadline (kill the group, 504) and asks the request whether anyone still waits.
 * Reaping is waitpid(pid) for this child only, after its stdout closed or after the kill, retried every 5 ms until
 * it succeeds: nothing installs a SIGCHLD handler, so no other child's status is ever taken. Then the temp directory
 * is removed and the slot released. The tick is a timerfd of the job's own on the loop, not an h2o_timeout_t: h2o
 * 2.2 cannot dispose a timeout list from inside a timeout callback, and a worker's loop must hold none when it ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "proto/log.h"
#include "dataplane/core/pdf.h"

#define MODULE "dp/core/pdf"

#define TICK_MS 100
#define REAP_MS 5
#define CPU_GRACE_S 5

const char *const cph_pdf_page_size_names[] = {"A3", "A4", "A5", "Letter", "Legal", NULL};

typedef enum en_job_state_t { JOB_NEW = 0, JOB_QUEUED, JOB_RUNNING, JOB_REAPING } job_state_t;

struct st_cph_pdf_job_t {
    h2o_linklist_t link; /* pool.waiting while queued (under pool.mutex) */
    h2o_loop_t *loop;
    job_state_t state;
    int granted; /* under pool.mutex: handed a slot while queued */
    int efd;     /* queued: written by the thread that frees a slot */
    h2o_socket_t *wake;
    cph_pdf_spec_t spec; /* spec.title points at title */
    char *title;
    char *html;
    size_t html_len;
    pid_t pid;
    char tmpdir[64];
    h2o_socket_t *in, *out, *err;
    h2o_buffer_t *output;
    cph_pdf_result_t result;
    int exit_status;
    int killed;
    uint64_t deadline_ms; /* h2o_now() */
    struct timespec started;
    h2o_socket_t *timer; /* a timerfd: the 100 ms tick, then the 5 ms reap retries (h2o_timeout_t cannot be freed
                            from inside a timeout callback in h2o 2.2, and a worker's loop must hold none at exit) */
};

static struct {
    pthread_mutex_t mutex;
    unsigned workers, queue_cap;
    unsigned running, queued;
    h2o_linklist_t waiting;
} pool = {PTHREAD_MUTEX_INITIALIZER, 1, CPH_PDF_DEFAULT_QUEUE, 0, 0, {&pool.waiting, &pool.waiting}};

/* ---------------------------------------------------------------- argv, output */

void cph_pdf_argv_build(cph_pdf_argv_t *a, const cph_pdf_page_t *page, const char *title)
{
    static const char *const fixed[] = {CPH_PDF_BIN,
                                        "--quiet",
                                        "--disable-javascript",
                                        "--disable-local-file-access",
                                        "--disable-plugins",
                                        "--proxy",
                                        "http://127.0.0.1:9",
                                        "--load-error-handling",
                                        "ignore",
                                        "--load-media-error-handling",
                                        "ignore",
                                        NULL};
    static const char *const margin_flags[4] = {"-T", "-R", "-B", "-L"};
    size_t n = 0;

    for (size_t i = 0; fixed[i] != NULL; i++)
        a->argv[n++] = (char *)fixed[i];
    a->argv[n++] = "--page-size";
    a->argv[n++] = (char *)cph_pdf_page_size_names[page->size <= CPH_PDF_LEGAL ? page->size : CPH_PDF_A4];
    a->argv[n++] = "--orientation";
    a->argv[n++] = page->landscape ? "Landscape" : "Portrait";
    for (size_t i = 0; i != 4; i++) {
        snprintf(a->margins[i], sizeof(a->margins[i]), "%umm", (unsigned)(page->margins_mm[i] <= 100 ? page->margins_mm[i] : 100));
        a->argv[n++] = (char *)margin_flags[i];
        a->argv[n++] = a->margins[i];
    }
    if (title != NULL) {
        a->argv[n++] = "--title";
        a->argv[n++] = (char *)title;
    }
    a->argv[n++] = "-";
    a->argv[n++] = "-";
    a->argv[n] = NULL;
    a->argc = n;
}

int cph_pdf_output_valid(const char *out, size_t len)
{
    size_t tail = len < 1024 ? len : 1024;

    return len >= 5 && memcmp(out, "%PDF-", 5) == 0 && memmem(out + len - tail, tail, "%%EOF", 5) != NULL;
}

/* ---------------------------------------------------------------- the pool */

void cph_pdf_pool_configure(unsigned workers, unsigned queue)
{
    pthread_mutex_lock(&pool.mutex);
    pool.workers = workers >= 1 && workers <= CPH_PDF_WORKERS_MAX ? workers : 1;
    pool.queue_cap = queue <= CPH_PDF_QUEUE_MAX ? queue : CPH_PDF_QUEUE_MAX;
    pthread_mutex_unlock(&pool.mutex);
}

uint64_t cph_pdf_queue_depth(void)
{
    pthread_mutex_lock(&pool.mutex);
    uint64_t n = pool.queued;
    pthread_mutex_unlock(&pool.mutex);
    return n;
}

uint64_t cph_pdf_running(void)
{
    pthread_mutex_lock(&pool.mutex);
    uint64_t n = pool.running;
    pthread_mutex_unlock(&pool.mutex);
    return n;
}

/* Gives the slot of an ending job to the oldest waiting one (on its own thread, through its eventfd), or frees it. */
static void release_slot(void)
{
    static const uint64_t one = 1;

    pthread_mutex_lock(&pool.mutex);
    if (!h2o_linklist_is_empty(&pool.waiting)) {
        cph_pdf_job_t *next = H2O_STRUCT_FROM_MEMBER(cph_pdf_job_t, link, pool.waiting.next);
        h2o_linklist_unlink(&next->link);
        pool.queued--;
        next->granted = 1;
        if (write(next->efd, &one, sizeof(one)) != sizeof(one))
            cph_fatal(MODULE, "eventfd write failed: %s", strerror(errno));
    } else {
        pool.running--;
    }
    pthread_mutex_unlock(&pool.mutex);
}

/* ---------------------------------------------------------------- the end of a job */

static void job_free(cph_pdf_job_t *job)
{
    if (job->timer != NULL) {
        h2o_socket_read_stop(job->timer);
        h2o_socket_close(job->timer);
    }
    if (job->output != NULL)
        h2o_buffer_dispose(&job->output);
    free(job->title);
    free(job->html);
    free(job);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void close_pipes(cph_pdf_job_t *job)
{
    h2o_socket_t **socks[3] = {&job->in, &job->out, &job->err};

    for (size_t i = 0; i != 3; i++) {
        if (*socks[i] == NULL)
            continue;
        h2o_socket_read_stop(*socks[i]);
        h2o_socket_close(*socks[i]);
        *socks[i] = NULL;
    }
}

static uint64_t elapsed_us(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)(now.tv_sec - since->tv_sec) * 1000000u + (uint64_t)((now.tv_nsec - since->tv_nsec) / 1000);
}

/* The child is reaped: decide the result, clean up, pass the slot on, tell the caller. */
static void job_complete(cph_pdf_job_t *job)
{
    h2o_iovec_t pdf = h2o_iovec_init(NULL, 0);
    int code = WIFEXITED(job->exit_status) ? WEXITSTATUS(job->exit_status) : -1;

    close_pipes(job);
    if (job->tmpdir[0] != '\0')
        nftw(job->tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    if (job->result == CPH_PDF_OK) {
        /* 1 is also "a resource could not load" (the dead proxy did its job): the document is what counts */
        if ((code == 0 || code == 1) && job->output != NULL && cph_pdf_output_valid(job->output->bytes, job->output->size))
            pdf = h2o_iovec_init(job->output->bytes, job->output->size);
        else
            job->result = CPH_PDF_FAIL_EXIT;
        if (job->result == CPH_PDF_FAIL_EXIT)
            cph_log_warn(MODULE, "wkhtmltopdf failed (exit %d, signal %d)", code,
                         WIFSIGNALED(job->exit_status) ? WTERMSIG(job->exit_status) : 0);
    }
    release_slot();
    if (job->spec.on_done != NULL)
        job->spec.on_done(job->spec.ud, job->result, pdf, elapsed_us(&job->started));
    job_free(job);
}

/* Reaps this child only; 1 when done. */
static int try_reap(cph_pdf_job_t *job)
{
    pid_t got;

    while ((got = waitpid(job->pid, &job->exit_status, WNOHANG)) == -1 && errno == EINTR)
        ;
    if (got == 0)
        return 0;
    if (got == -1) /* ECHILD: someone set SIGCHLD to SIG_IGN; the kernel reaped it */
        job->exit_status = 0x7f00;
    return 1;
}

/* (Re)arms the job's timerfd to fire every ms milliseconds. */
static void arm_timer(cph_pdf_job_t *job, uint64_t ms)
{
    struct itimerspec its = {{(time_t)(ms / 1000), (long)(ms % 1000) * 1000000},
                             {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000}};

    if (timerfd_settime(h2o_socket_get_fd(job->timer), 0, &its, NULL) != 0)
        cph_fatal(MODULE, "timerfd_settime: %s", strerror(errno));
}

/* No more output is expected (stdout closed, or the job was killed): reap now or on the reap timer. */
static void start_reaping(cph_pdf_job_t *job)
{
    if (job->state == JOB_REAPING)
        return;
    job->state = JOB_REAPING;
    if (job->in != NULL) { /* the child stopped reading: what was not written never will be */
        h2o_socket_close(job->in);
        job->in = NULL;
    }
    if (try_reap(job))
        job_complete(job);
    else
        arm_timer(job, REAP_MS);
}

/* Kills the child's whole process group; the job ends with result once the child is reaped. */
static void kill_job(cph_pdf_job_t *job, cph_pdf_result_t result)
{
    if (job->result == CPH_PDF_OK)
        job->result = result;
    job->killed = 1;
    kill(-job->pid, SIGKILL);
    kill(job->pid, SIGKILL); /* in case it had not reached its own group yet */
    close_pipes(job);
    start_reaping(job);
}

/* ---------------------------------------------------------------- pipes */

static void on_stdin_written(h2o_socket_t *sock, const char *err)
{
    cph_pdf_job_t *job = sock->data;

    (void)err;              /* EPIPE: the child quit early; its exit status and stdout tell what happened */
    h2o_socket_close(sock); /* EOF on the child's stdin: the document is complete */
    job->in = NULL;
}

static void on_stdout(h2o_socket_t *sock, const char *err)
{
    cph_pdf_job_t *job = sock->data;

    if (sock->input->size > job->spec.max_output_bytes) {
        kill_job(job, CPH_PDF_FAIL_TOO_LARGE);
        return;
    }
    if (err == NULL)
        return;
    /* EOF (or a read error): keep what arrived, close the pipe, reap */
    job->output = sock->input;
    h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
    h2o_socket_read_stop(sock);
    h2o_socket_close(sock);
    job->out = NULL;
    start_reaping(job);
}

static void on_stderr(h2o_socket_t *sock, const char *err)
{
    cph_pdf_job_t *job = sock->data;

    h2o_buffer_consume(&sock->input, sock->input->size);
    if (err == NULL)
        return;
    h2o_socket_read_stop(sock);
    h2o_socket_close(sock);
    job->err = NULL;
}

static h2o_socket_t *pipe_socket(cph_pdf_job_t *job, int fd, h2o_socket_cb on_read)
{
    h2o_socket_t *sock;

    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    sock = h2o_evloop_socket_create(job->loop, fd, on_read != NULL ? 0 : H2O_SOCKET_FLAG_DONT_READ);
    sock->data = job;
    if (on_read != NULL)
        h2o_socket_read_start(sock, on_read);
    return sock;
}

/* ---------------------------------------------------------------- the child */

/* In the child, between fork and exec: async-signal-safe calls only. Never returns. */
static void child_exec(cph_pdf_job_t *job, const int fds[3], char *const *argv, char *const *envp)
{
    uint64_t cpu_s = (job->spec.timeout_ms + 999) / 1000 + CPU_GRACE_S;
    struct rlimit as = {CPH_PDF_RLIMIT_AS, CPH_PDF_RLIMIT_AS}, cpu = {cpu_s, cpu_s}, nofile = {64, 64};
    struct rlimit fsize = {job->spec.max_output_bytes + (16u << 20), job->spec.max_output_bytes + (16u << 20)};
    sigset_t none;

    setpgid(0, 0);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (dup2(fds[0], 0) == -1 || dup2(fds[1], 1) == -1 || dup2(fds[2], 2) == -1)
        _exit(126);
    syscall(SYS_close_range, 3u, ~0u, 0u);
    if (chdir(job->tmpdir) != 0 || setrlimit(RLIMIT_AS, &as) != 0 || setrlimit(RLIMIT_CPU, &cpu) != 0 ||
        setrlimit(RLIMIT_NOFILE, &nofile) != 0 || setrlimit(RLIMIT_FSIZE, &fsize) != 0)
        _exit(126);
    execve(CPH_PDF_BIN, argv, envp);
    _exit(127);
}

/* Forks the child with its three pipes; the parent's ends become sockets on the job's loop. */
static int spawn(cph_pdf_job_t *job)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    char home[96], tmp[96], xdg[96];
    char *envp[] = {home, tmp, xdg, "PATH=/usr/bin:/bin", "LANG=C.UTF-8", NULL};
    cph_pdf_argv_t a;

    strcpy(job->tmpdir, "/tmp/cephalo-pdf-XXXXXX");
    if (mkdtemp(job->tmpdir) == NULL) {
        job->tmpdir[0] = '\0';
        goto Error;
    }
    snprintf(home, sizeof(home), "HOME=%s", job->tmpdir);
    snprintf(tmp, sizeof(tmp), "TMPDIR=%s", job->tmpdir);
    snprintf(xdg, sizeof(xdg), "XDG_RUNTIME_DIR=%s", job->tmpdir);
    cph_pdf_argv_build(&a, &job->spec.page, job->spec.title);
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
        goto Error;
    if ((job->pid = fork()) == -1)
        goto Error;
    if (job->pid == 0)
        child_exec(job, (int[3]){in[0], out[1], err[1]}, a.argv, envp);
    setpgid(job->pid, job->pid); /* also here: a kill right after the fork must reach the group */
    close(in[0]), close(out[1]), close(err[1]);
    job->in = pipe_socket(job, in[1], NULL);
    job->out = pipe_socket(job, out[0], on_stdout);
    job->err = pipe_socket(job, err[0], on_stderr);
    h2o_socket_write(job->in, &(h2o_iovec_t){job->html, job->html_len}, 1, on_stdin_written);
    return 0;
Error:
    cph_log_error(MODULE, "cannot start %s: %s", CPH_PDF_BIN, strerror(errno));
    for (size_t i = 0; i != 2; i++) {
        if (in[i] != -1)
            close(in[i]);
        if (out[i] != -1)
            close(out[i]);
        if (err[i] != -1)
            close(err[i]);
    }
    return -1;
}

/* ---------------------------------------------------------------- job lifecycle */

static void on_tick(h2o_socket_t *sock, const char *err)
{
    cph_pdf_job_t *job = sock->data;

    (void)err;
    h2o_buffer_consume(&sock->input, sock->input->size);
    if (job->state == JOB_REAPING && try_reap(job)) {
        job_complete(job);
        return;
    }
    if ((job->state == JOB_RUNNING || job->state == JOB_REAPING) && !job->killed && h2o_now(job->loop) >= job->deadline_ms) {
        kill_job(job, CPH_PDF_FAIL_TIMEOUT); /* may complete (and free) the job */
        return;
    }
    if (job->state == JOB_REAPING)
        return;
    if (job->state != JOB_REAPING && job->spec.alive != NULL && !job->spec.alive(job->spec.ud)) {
        if (job->state == JOB_RUNNING) {
            kill_job(job, CPH_PDF_CANCELLED);
        } else { /* still waiting: leave the queue and say so */
            cph_pdf_done_cb cb = job->spec.on_done;
            void *ud = job->spec.ud;
            cph_pdf_job_cancel(job);
            if (cb != NULL)
                cb(ud, CPH_PDF_CANCELLED, h2o_iovec_init(NULL, 0), 0);
        }
        return;
    }
}

/* A slot is ours: fork the child and arm its deadline. */
static void job_start(cph_pdf_job_t *job)
{
    job->state = JOB_RUNNING;
    clock_gettime(CLOCK_MONOTONIC, &job->started);
    job->deadline_ms = h2o_now(job->loop) + job->spec.timeout_ms;
    if (spawn(job) != 0) {
        job->result = CPH_PDF_FAIL_SPAWN;
        job->state = JOB_REAPING;
        job->exit_status = 0;
        job_complete(job);
    }
}

static void close_wake(cph_pdf_job_t *job)
{
    if (job->wake == NULL)
        return;
    h2o_socket_read_stop(job->wake);
    h2o_socket_close(job->wake); /* closes the eventfd */
    job->wake = NULL;
}

static void on_wake(h2o_socket_t *sock, const char *err)
{
    cph_pdf_job_t *job = sock->data;
    int granted;

    (void)err;
    h2o_buffer_consume(&sock->input, sock->input->size);
    pthread_mutex_lock(&pool.mutex);
    granted = job->granted;
    pthread_mutex_unlock(&pool.mutex);
    if (!granted)
        return;
    close_wake(job);
    job_start(job);
}

cph_pdf_job_t *cph_pdf_job_create(h2o_loop_t *loop, const cph_pdf_spec_t *spec, char *html, size_t len)
{
    cph_pdf_job_t *job = calloc(1, sizeof(*job));

    if (job == NULL)
        cph_fatal(MODULE, "out of memory");
    job->loop = loop;
    job->spec = *spec;
    job->html = html;
    job->html_len = len;
    job->efd = -1;
    job->result = CPH_PDF_OK;
    if (spec->title != NULL && (job->title = strdup(spec->title)) == NULL)
        cph_fatal(MODULE, "out of memory");
    job->spec.title = job->title;
    return job;
}

int cph_pdf_job_submit(cph_pdf_job_t *job)
{
    int start = 0, fd;

    pthread_mutex_lock(&pool.mutex);
    if (pool.running < pool.workers) {
        pool.running++;
        start = 1;
    } else if (pool.queued < pool.queue_cap) {
        if ((job->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
            cph_fatal(MODULE, "eventfd: %s", strerror(errno));
        pool.queued++;
        job->state = JOB_QUEUED;
        h2o_linklist_insert(&pool.waiting, &job->link);
    } else {
        pthread_mutex_unlock(&pool.mutex);
        return -1;
    }
    pthread_mutex_unlock(&pool.mutex);
    if ((fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) == -1)
        cph_fatal(MODULE, "timerfd_create: %s", strerror(errno));
    job->timer = h2o_evloop_socket_create(job->loop, fd, 0);
    job->timer->data = job;
    h2o_socket_read_start(job->timer, on_tick);
    arm_timer(job, TICK_MS);
    if (start) {
        job_start(job);
    } else {
        job->wake = h2o_evloop_socket_create(job->loop, job->efd, 0);
        job->wake->data = job;
        h2o_socket_read_start(job->wake, on_wake);
    }
    return 0;
}

void cph_pdf_job_cancel(cph_pdf_job_t *job)
{
    int granted = 0;

    job->spec.on_done = NULL;
    job->spec.alive = NULL;
    switch (job->state) {
    case JOB_NEW:
        job_free(job);
        return;
    case JOB_QUEUED:
        pthread_mutex_lock(&pool.mutex);
        if (!(granted = job->granted)) {
            h2o_linklist_unlink(&job->link);
            pool.queued--;
        }
        pthread_mutex_unlock(&pool.mutex);
        close_wake(job);
        if (granted)
            release_slot();
        job_free(job);
        return;
    case JOB_RUNNING:
        kill_job(job, CPH_PDF_CANCELLED);
        return;
    case JOB_REAPING:
        return; /* ends on its own, telling no one */
    }
}
