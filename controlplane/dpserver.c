/*
 * dpserver: the control plane's snapshot server - its thread, its sockets and its per-session write queues.
 *
 * One thread runs a poll() loop over a wakeup eventfd, the listening Unix socket and every session. Reads are
 * non-blocking and go into a cph_frame_reader_t per session; each complete frame is handed to dpsession.c, which
 * owns the protocol. Writes are non-blocking too: every session has its own queue of encoded frames, a partial write
 * leaves the rest queued and asks for POLLOUT, so a slow data plane only ever slows itself. The snapshot is encoded
 * once per publish and the same frame is shared by every session's queue; since a session has at most one snapshot
 * in flight, a queue only grows when its peer stops reading, and past CPH_DPSERVER_QUEUE_MAX frames the session is
 * dropped (the data plane reconnects and gets the latest snapshot).
 *
 * Other threads talk to this one through server->lock and the eventfd: cph_dpserver_publish() swaps the latest
 * frame under the lock and writes the eventfd; cph_dpserver_stop() sets the stopping flag the same way and joins.
 * cph_dpserver_purge() hands a purge frame over through a small queue of its own and waits until this thread has
 * queued it to every session, so the admin API can say how many data planes it went to.
 *
 * Purges are also kept for replay, in a ring of this thread's (CPH_DPSERVER_PURGE_REPLAY_MAX frames, none older than
 * CPH_DPSERVER_PURGE_KEEP_MS, the longest a cached entry lives): a data plane that was away when a purge was sent may
 * still hold entries it should have dropped, so every session that says hello gets the kept purges after its
 * snapshot. Each carries "at", the control plane's time of the purge, and a data plane drops only entries stored
 * before it, so a replay never throws away what was cached since. A replay can be longer than a session's queue cap:
 * it is fed to the queue a few frames at a time (up to half the cap) and resumes whenever the socket drains.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "controlplane/dpserver_internal.h"
#include "proto/log.h"

#define MODULE "cp/dpserver"

#define READ_CHUNK (64 * 1024)
#define READS_PER_ROUND 16 /* fairness: at most this many reads per session per loop iteration */
#define POLL_MAX_MS 1000

uint64_t cph_dpserver_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t cph_dpserver_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- shared frames and queues */

cph_dpframe_t *cph_dpframe_new(const json_t *msg, cph_error_t *err)
{
    cph_dpframe_t *f;
    char *data;
    size_t len;

    if (cph_frame_encode(msg, CPH_FRAME_MAX_DEFAULT, &data, &len, err) != 0)
        return NULL;
    if ((f = malloc(sizeof(*f))) == NULL)
        cph_fatal(MODULE, "out of memory");
    atomic_init(&f->refcnt, 1);
    f->len = len;
    f->data = data;
    return f;
}

void cph_dpframe_release(cph_dpframe_t *f)
{
    if (f == NULL || atomic_fetch_sub(&f->refcnt, 1) != 1)
        return;
    free(f->data);
    free(f);
}

static void queue_pop(cph_dpsession_t *sess)
{
    cph_dpqent_t *e = sess->qhead;

    sess->qhead = e->next;
    if (sess->qhead == NULL)
        sess->qtail = NULL;
    sess->qoff = 0;
    --sess->qlen;
    cph_dpframe_release(e->frame);
    free(e);
}

/* Writes as much of the queue as the socket takes. A write error kills the session. */
static void flush(cph_dpsession_t *sess)
{
    while (sess->qhead != NULL && !sess->dead) {
        cph_dpframe_t *f = sess->qhead->frame;
        ssize_t n = send(sess->fd, f->data + sess->qoff, f->len - sess->qoff, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                cph_log_debug(MODULE, "write to a data plane failed: %s", strerror(errno));
                sess->dead = 1;
            }
            return;
        }
        sess->qoff += (size_t)n;
        if (sess->qoff == f->len)
            queue_pop(sess);
    }
}

void cph_dpsession_send(cph_dpsession_t *sess, cph_dpframe_t *frame)
{
    cph_dpqent_t *e;

    if (sess->dead)
        return;
    if (sess->qlen >= CPH_DPSERVER_QUEUE_MAX) {
        cph_log_warn(MODULE, "data plane %s does not read; dropping its session", sess->row ? sess->row->id : "(no hello)");
        sess->dead = 1;
        return;
    }
    if ((e = malloc(sizeof(*e))) == NULL)
        cph_fatal(MODULE, "out of memory");
    atomic_fetch_add(&frame->refcnt, 1);
    e->frame = frame;
    e->next = NULL;
    if (sess->qtail != NULL)
        sess->qtail->next = e;
    else
        sess->qhead = e;
    sess->qtail = e;
    ++sess->qlen;
    flush(sess);
}

void cph_dpsession_send_msg(cph_dpsession_t *sess, json_t *msg)
{
    cph_error_t err;
    cph_dpframe_t *f = cph_dpframe_new(msg, &err);

    json_decref(msg);
    if (f == NULL) {
        cph_log_error(MODULE, "cannot encode a message: %s", err.msg);
        sess->dead = 1;
        return;
    }
    cph_dpsession_send(sess, f);
    cph_dpframe_release(f);
}

void cph_dpsession_fail(cph_dpsession_t *sess, const char *code, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    cph_log_info(MODULE, "closing a data plane session (%s): %s", code, text);
    if (!sess->dead)
        cph_dpsession_send_msg(sess, cph_msg_error(code, text)); /* best effort: whatever the socket takes now */
    sess->dead = 1;
}

/* ---------------------------------------------------------------- sessions */

static void session_free(cph_dpsession_t *sess)
{
    while (sess->qhead != NULL)
        queue_pop(sess);
    cph_frame_reader_dispose(&sess->reader);
    close(sess->fd);
    free(sess);
}

static void accept_all(cph_dpserver_t *s)
{
    int fd, i;

    for (i = 0; i != 64; ++i) {
        cph_dpsession_t *sess;
        if ((fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                cph_log_warn(MODULE, "accept failed: %s; pausing accepts for 100 ms", strerror(errno));
                s->accept_paused_until = cph_dpserver_now_ms() + 100;
            }
            return;
        }
        if (s->num_sessions >= CPH_DPSERVER_MAX_SESSIONS) {
            cph_log_warn(MODULE, "too many data plane connections (%d); refusing one", CPH_DPSERVER_MAX_SESSIONS);
            close(fd);
            continue;
        }
        if ((sess = calloc(1, sizeof(*sess))) == NULL)
            cph_fatal(MODULE, "out of memory");
        sess->fd = fd;
        cph_frame_reader_init(&sess->reader, CPH_FRAME_MAX_DEFAULT);
        sess->last_rx_ms = cph_dpserver_now_ms();
        sess->next = s->sessions;
        s->sessions = sess;
        ++s->num_sessions;
    }
}

/* Hands every complete frame to the protocol; a bad frame gets an error and closes the session. */
static void drain_frames(cph_dpserver_t *s, cph_dpsession_t *sess)
{
    while (!sess->dead) {
        cph_error_t err;
        json_t *msg;
        int r = cph_frame_reader_next(&sess->reader, &msg, &err);
        if (r == 0)
            return;
        if (r < 0) {
            cph_dpsession_fail(sess, err.code, "%s", err.msg);
            return;
        }
        cph_dpsession_on_message(s, sess, msg);
        json_decref(msg);
    }
}

static void on_readable(cph_dpserver_t *s, cph_dpsession_t *sess)
{
    int i;

    for (i = 0; i != READS_PER_ROUND && !sess->dead; ++i) {
        ssize_t n = recv(sess->fd, s->rbuf, READ_CHUNK, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                sess->dead = 1;
            return;
        }
        if (n == 0) {
            sess->dead = 1;
            return;
        }
        sess->last_rx_ms = cph_dpserver_now_ms();
        cph_frame_reader_feed(&sess->reader, s->rbuf, (size_t)n);
        drain_frames(s, sess);
    }
}

/* Closes timed-out sessions, frees the dead ones and returns the poll timeout until the next heartbeat deadline. */
static int sweep(cph_dpserver_t *s)
{
    uint64_t now = cph_dpserver_now_ms(), limit = 3 * s->heartbeat_ms, next = now + POLL_MAX_MS;
    cph_dpsession_t **p = &s->sessions;
    int any_dead = 0;

    for (cph_dpsession_t *sess = s->sessions; sess != NULL; sess = sess->next) {
        if (!sess->dead && now - sess->last_rx_ms >= limit) {
            cph_log_info(MODULE, "data plane %s missed 3 heartbeats; closing", sess->row ? sess->row->id : "(no hello)");
            sess->dead = 1;
        }
        if (sess->dead)
            any_dead = 1;
        else if (sess->last_rx_ms + limit < next)
            next = sess->last_rx_ms + limit;
    }
    if (any_dead) {
        pthread_mutex_lock(&s->lock);
        while (*p != NULL) {
            cph_dpsession_t *sess = *p;
            if (!sess->dead) {
                p = &sess->next;
                continue;
            }
            *p = sess->next;
            --s->num_sessions;
            cph_dpsession_on_close(s, sess);
            session_free(sess);
        }
        pthread_mutex_unlock(&s->lock);
    }
    return next > now ? (int)(next - now) : 0;
}

/* ---------------------------------------------------------------- purge requests */

/*
 * A purge asked for by another thread. It lives on the asking thread's stack and in s->purges (under s->lock): the
 * server thread queues its frame to every session that said hello, counts them, marks it done and signals
 * s->changed; a request still undone when its wait expires is taken out of the queue by its owner before it returns.
 * Sessions are only ever touched by the server thread, which is why the frame is handed over rather than sent by the
 * asking thread.
 */
typedef struct st_cph_dppurge_t {
    struct st_cph_dppurge_t *next;
    cph_dpframe_t *frame;
    uint64_t at_ms;
    size_t sent;
    int done;
} purge_req_t;

static int replay_expired(const cph_dpreplay_t *r, uint64_t now_wall_ms)
{
    return r->at_ms + CPH_DPSERVER_PURGE_KEEP_MS <= now_wall_ms;
}

/* Server thread: keeps frame for replay, dropping the oldest kept purges beyond the cap and the expired ones. */
static void replay_keep(cph_dpserver_t *s, uint64_t at_ms, cph_dpframe_t *frame)
{
    uint64_t now = cph_dpserver_wall_ms();
    cph_dpreplay_t *r;

    while (s->replay_first != s->replay_end) {
        r = &s->replay[s->replay_first % CPH_DPSERVER_PURGE_REPLAY_MAX];
        if (s->replay_end - s->replay_first < CPH_DPSERVER_PURGE_REPLAY_MAX && !replay_expired(r, now))
            break;
        cph_dpframe_release(r->frame);
        r->frame = NULL;
        ++s->replay_first;
    }
    r = &s->replay[s->replay_end++ % CPH_DPSERVER_PURGE_REPLAY_MAX];
    atomic_fetch_add(&frame->refcnt, 1);
    r->frame = frame;
    r->at_ms = at_ms;
}

void cph_dpsession_replay_purges(cph_dpserver_t *s, cph_dpsession_t *sess)
{
    uint64_t now = cph_dpserver_wall_ms();

    if (sess->replay_next < s->replay_first)
        sess->replay_next = s->replay_first; /* those were dropped from the ring meanwhile */
    while (sess->replay_next < sess->replay_end && !sess->dead && sess->qlen < CPH_DPSERVER_QUEUE_MAX / 2) {
        const cph_dpreplay_t *r = &s->replay[sess->replay_next++ % CPH_DPSERVER_PURGE_REPLAY_MAX];
        if (!replay_expired(r, now))
            cph_dpsession_send(sess, r->frame);
    }
}

/* Server thread, s->lock held: queues every pending purge to the sessions, in the order they were asked for. */
static void run_purges_locked(cph_dpserver_t *s)
{
    if (s->purges == NULL)
        return;
    while (s->purges != NULL) {
        purge_req_t *req = s->purges;
        s->purges = req->next;
        for (cph_dpsession_t *sess = s->sessions; sess != NULL; sess = sess->next) {
            if (!sess->hello_done || sess->dead)
                continue;
            cph_dpsession_send(sess, req->frame);
            req->sent += !sess->dead;
        }
        replay_keep(s, req->at_ms, req->frame);
        req->done = 1;
    }
    pthread_cond_broadcast(&s->changed);
}

/* The eventfd fired: stop, or push the latest snapshot and the pending purges to every session that can take them. */
static int on_wakeup(cph_dpserver_t *s)
{
    uint64_t v;
    int stop;

    while (read(s->wake_fd, &v, sizeof(v)) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&s->lock);
    if (!(stop = s->stopping)) {
        for (cph_dpsession_t *sess = s->sessions; sess != NULL; sess = sess->next)
            if (sess->hello_done && !sess->dead)
                cph_dpsession_push_latest(s, sess);
    }
    if (!stop)
        run_purges_locked(s); /* behind the latest snapshot wherever a session could take it now */
    pthread_mutex_unlock(&s->lock);
    return stop;
}

static size_t build_pollfds(cph_dpserver_t *s, struct pollfd *pfd, cph_dpsession_t **at)
{
    size_t n = 0;

    if (s->accept_paused_until != 0 && cph_dpserver_now_ms() >= s->accept_paused_until)
        s->accept_paused_until = 0;
    pfd[n++] = (struct pollfd){s->wake_fd, POLLIN, 0};
    pfd[n++] = (struct pollfd){s->accept_paused_until == 0 ? s->listen_fd : -1, POLLIN, 0};
    for (cph_dpsession_t *sess = s->sessions; sess != NULL; sess = sess->next) {
        at[n] = sess;
        pfd[n++] = (struct pollfd){sess->fd, (short)(POLLIN | (sess->qhead != NULL ? POLLOUT : 0)), 0};
    }
    return n;
}

static void *thread_main(void *arg)
{
    cph_dpserver_t *s = arg;
    struct pollfd *pfd = NULL;
    cph_dpsession_t **at = NULL;
    size_t cap = 0, n, i;
    int timeout = 0;

    for (;;) {
        if (cap < s->num_sessions + 2) {
            cap = (s->num_sessions + 2) * 2;
            if ((pfd = realloc(pfd, cap * sizeof(*pfd))) == NULL || (at = realloc(at, cap * sizeof(*at))) == NULL)
                cph_fatal(MODULE, "out of memory");
        }
        n = build_pollfds(s, pfd, at);
        if (s->accept_paused_until != 0 && (uint64_t)timeout > 100)
            timeout = 100;
        if (poll(pfd, n, timeout) < 0 && errno != EINTR)
            cph_fatal(MODULE, "poll failed: %s", strerror(errno));
        if ((pfd[0].revents & POLLIN) && on_wakeup(s))
            break;
        if (pfd[1].revents & POLLIN)
            accept_all(s);
        for (i = 2; i != n; ++i) {
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                on_readable(s, at[i]);
            if ((pfd[i].revents & POLLOUT) && !at[i]->dead) {
                flush(at[i]);
                cph_dpsession_replay_purges(s, at[i]); /* a replay waiting for room goes on */
            }
        }
        timeout = sweep(s);
    }
    free(pfd);
    free(at);
    return NULL;
}

/* ---------------------------------------------------------------- socket setup */

/* Creates every missing directory of path's parent with mode 0700; existing ones are left as they are. */
static int make_parent_dirs(const char *path, cph_error_t *err)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char *p;

    snprintf(dir, sizeof(dir), "%s", path);
    if ((p = strrchr(dir, '/')) == NULL || p == dir)
        return 0;
    *p = '\0';
    for (p = dir + 1; *p != '\0'; ++p) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return cph_error_set(err, "socket", "", "cannot create %s: %s", dir, strerror(errno));
        *p = '/';
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return cph_error_set(err, "socket", "", "cannot create %s: %s", dir, strerror(errno));
    return 0;
}

/* Removes a socket file no process listens on; refuses a live socket or anything that is not a socket. */
static int remove_stale(const struct sockaddr_un *sa, cph_error_t *err)
{
    struct stat st;
    int fd, live;

    if (lstat(sa->sun_path, &st) != 0)
        return errno == ENOENT ? 0 : cph_error_set(err, "socket", "", "cannot stat %s: %s", sa->sun_path, strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return cph_error_set(err, "socket", "", "%s exists and is not a socket", sa->sun_path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return cph_error_set(err, "socket", "", "socket: %s", strerror(errno));
    live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
    close(fd);
    if (live)
        return cph_error_set(err, "socket", "", "%s is in use by another control plane", sa->sun_path);
    if (unlink(sa->sun_path) != 0 && errno != ENOENT)
        return cph_error_set(err, "socket", "", "cannot remove %s: %s", sa->sun_path, strerror(errno));
    return 0;
}

static int listen_on(const char *path, cph_error_t *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = -1;

    if (path == NULL || path[0] == '\0' || strlen(path) >= sizeof(sa.sun_path))
        return cph_error_set(err, "socket", "", "the socket path is empty or longer than %zu bytes", sizeof(sa.sun_path) - 1);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (make_parent_dirs(path, err) != 0 || remove_stale(&sa, err) != 0)
        return -1;
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
        cph_error_set(err, "socket", "", "socket: %s", strerror(errno));
        goto Error;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        cph_error_set(err, "socket", "", "cannot bind %s: %s", path, strerror(errno));
        goto Error;
    }
    /* the directory is 0700 when we created it; the socket itself is owner-only either way */
    if (chmod(path, 0600) != 0 || listen(fd, 128) != 0) {
        cph_error_set(err, "socket", "", "cannot listen on %s: %s", path, strerror(errno));
        unlink(path);
        goto Error;
    }
    return fd;
Error:
    if (fd >= 0)
        close(fd);
    return -1;
}

/* ---------------------------------------------------------------- public API */

static void server_free(cph_dpserver_t *s)
{
    for (uint64_t n = s->replay_first; n != s->replay_end; ++n)
        cph_dpframe_release(s->replay[n % CPH_DPSERVER_PURGE_REPLAY_MAX].frame);
    free(s->replay);
    cph_dpsession_free_rows(s);
    cph_dpframe_release(s->latest);
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->lock);
    free(s->socket_path);
    free(s->rbuf);
    free(s);
}

cph_dpserver_t *cph_dpserver_start(const char *socket_path, const char *epoch, uint64_t heartbeat_ms, cph_error_t *err)
{
    cph_dpserver_t *s;
    pthread_condattr_t ca;

    if (epoch == NULL || strlen(epoch) == 0 || strlen(epoch) > 64) {
        cph_error_set(err, "invalid", "", "the epoch must be 1 to 64 bytes");
        return NULL;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL || (s->socket_path = strdup(socket_path != NULL ? socket_path : "")) == NULL ||
        (s->rbuf = malloc(READ_CHUNK)) == NULL || (s->replay = calloc(CPH_DPSERVER_PURGE_REPLAY_MAX, sizeof(*s->replay))) == NULL)
        cph_fatal(MODULE, "out of memory");
    snprintf(s->epoch, sizeof(s->epoch), "%s", epoch);
    s->heartbeat_ms = heartbeat_ms != 0 ? heartbeat_ms : 1000;
    s->listen_fd = s->wake_fd = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->changed, &ca);
    pthread_condattr_destroy(&ca);
    if ((s->listen_fd = listen_on(socket_path, err)) < 0)
        goto Error;
    if ((s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        cph_error_set(err, "internal", "", "eventfd: %s", strerror(errno));
        goto Error;
    }
    if (pthread_create(&s->thread, NULL, thread_main, s) != 0) {
        cph_error_set(err, "internal", "", "cannot start the dpserver thread");
        goto Error;
    }
    cph_log_info(MODULE, "listening for data planes on %s", socket_path);
    return s;
Error:
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        unlink(socket_path);
    }
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    server_free(s);
    return NULL;
}

static void wake(cph_dpserver_t *s)
{
    uint64_t one = 1;

    /* EAGAIN means the counter is already non-zero: the thread will wake anyway */
    while (write(s->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

void cph_dpserver_stop(cph_dpserver_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_mutex_unlock(&s->lock);
    wake(s);
    pthread_join(s->thread, NULL);
    pthread_mutex_lock(&s->lock);
    while (s->sessions != NULL) {
        cph_dpsession_t *sess = s->sessions;
        s->sessions = sess->next;
        cph_dpsession_on_close(s, sess);
        session_free(sess);
    }
    s->num_sessions = 0;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    close(s->listen_fd);
    close(s->wake_fd);
    unlink(s->socket_path);
    cph_log_info(MODULE, "stopped");
    server_free(s);
}

void cph_dpserver_publish(cph_dpserver_t *s, uint64_t version, const char *hash, json_t *body)
{
    json_t *msg;
    cph_dpframe_t *f, *old = NULL;
    cph_error_t err;

    if (hash == NULL || strlen(hash) >= CPH_HASH_SIZE || !json_is_object(body)) {
        cph_log_error(MODULE, "publish of version %llu refused: bad hash or body", (unsigned long long)version);
        return;
    }
    /* encoded outside the lock: a large body must not stall the server thread or the admin API */
    msg = cph_msg_snapshot(s->epoch, version, hash, body);
    f = cph_dpframe_new(msg, &err);
    json_decref(msg);
    if (f == NULL) {
        cph_log_error(MODULE, "snapshot version %llu cannot be sent: %s", (unsigned long long)version, err.msg);
        return;
    }
    pthread_mutex_lock(&s->lock);
    if (s->latest != NULL && (version < s->latest_version || (version == s->latest_version && strcmp(hash, s->latest_hash) == 0))) {
        old = f; /* an older or identical publish lost a race with a newer one: latest wins */
    } else {
        old = s->latest;
        s->latest = f;
        s->latest_version = version;
        snprintf(s->latest_hash, sizeof(s->latest_hash), "%s", hash);
    }
    pthread_mutex_unlock(&s->lock);
    cph_dpframe_release(old);
    wake(s);
}

/* Appends req to s's purge queue (FIFO, so two purges reach a data plane in the order they were asked). */
static void purge_enqueue(cph_dpserver_t *s, purge_req_t *req)
{
    purge_req_t **p = &s->purges;

    pthread_mutex_lock(&s->lock);
    while (*p != NULL)
        p = &(*p)->next;
    *p = req;
    pthread_mutex_unlock(&s->lock);
}

/* Waits until the server thread ran req or deadline passed; an undone req leaves the queue. Returns its count. */
static size_t purge_wait(cph_dpserver_t *s, purge_req_t *req, const struct timespec *deadline)
{
    size_t sent;

    pthread_mutex_lock(&s->lock);
    while (!req->done && pthread_cond_timedwait(&s->changed, &s->lock, deadline) != ETIMEDOUT)
        ;
    if (!req->done) {
        for (purge_req_t **p = &s->purges; *p != NULL; p = &(*p)->next)
            if (*p == req) {
                *p = req->next;
                break;
            }
        cph_log_warn(MODULE, "a purge was not handed to the data planes within %d ms", CPH_DPSERVER_PURGE_WAIT_MS);
    }
    sent = req->sent;
    pthread_mutex_unlock(&s->lock);
    return sent;
}

size_t cph_dpserver_purge(cph_dpserver_t *s, const char *route, const char *prefix, uint64_t at_ms)
{
    purge_req_t req = {.at_ms = at_ms};
    struct timespec deadline;
    cph_error_t err;
    json_t *msg;
    size_t sent;
    int stopping;

    if (s == NULL)
        return 0;
    pthread_mutex_lock(&s->lock);
    stopping = s->stopping;
    pthread_mutex_unlock(&s->lock);
    if (stopping)
        return 0;
    msg = cph_msg_purge(route, prefix);
    if (json_object_set_new(msg, "at", json_integer((json_int_t)(at_ms > (uint64_t)INT64_MAX ? INT64_MAX : at_ms))) != 0)
        cph_fatal(MODULE, "out of memory");
    req.frame = cph_dpframe_new(msg, &err);
    json_decref(msg);
    if (req.frame == NULL) {
        cph_log_error(MODULE, "a purge cannot be sent: %s", err.msg);
        return 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += CPH_DPSERVER_PURGE_WAIT_MS / 1000;
    deadline.tv_nsec += (long)(CPH_DPSERVER_PURGE_WAIT_MS % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    purge_enqueue(s, &req);
    wake(s);
    sent = purge_wait(s, &req, &deadline);
    cph_dpframe_release(req.frame);
    return sent;
}
