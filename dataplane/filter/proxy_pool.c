/*
 * proxy_pool: keep-alive connections to the upstream targets and the per-worker timeouts of filter/proxy.c
 * (proxy_pool.h). Everything here runs on the worker's own thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dataplane/filter/fetch.h"
#include "dataplane/filter/filter.h"
#include "dataplane/filter/proxy_pool.h"

void cph_upconn_close(cph_upconn_t *c)
{
    if (h2o_linklist_is_linked(&c->link)) {
        h2o_linklist_unlink(&c->link);
        c->pool->num_idle--;
    }
    if (h2o_timeout_is_linked(&c->idle_timer))
        h2o_timeout_unlink(&c->idle_timer);
    h2o_socket_close(c->sock);
    free(c);
}

/* An idle connection that becomes readable was closed by the upstream or sent bytes nobody asked for. */
static void on_idle_read(h2o_socket_t *sock, const char *err)
{
    (void)err;
    cph_upconn_close(sock->data);
}

static void on_idle_timeout(h2o_timeout_entry_t *entry)
{
    cph_upconn_close(H2O_STRUCT_FROM_MEMBER(cph_upconn_t, idle_timer, entry));
}

void cph_upconn_return(struct st_cph_proxy_worker_t *pw, cph_upconn_t *c)
{
    cph_pool_t *pool = c->pool;

    c->u = NULL;
    h2o_socket_read_start(c->sock, on_idle_read);
    h2o_timeout_link(pw->worker->ctx.loop, &pw->idle_timeout, &c->idle_timer);
    h2o_linklist_insert(&pool->idle, &c->link);
    if (++pool->num_idle > CPH_POOL_MAX_IDLE)
        cph_upconn_close(H2O_STRUCT_FROM_MEMBER(cph_upconn_t, link, pool->idle.next));
}

cph_upconn_t *cph_pool_pop(cph_pool_t *pool)
{
    cph_upconn_t *c;

    if (h2o_linklist_is_empty(&pool->idle))
        return NULL;
    c = H2O_STRUCT_FROM_MEMBER(cph_upconn_t, link, pool->idle.prev); /* the most recently used */
    h2o_linklist_unlink(&c->link);
    pool->num_idle--;
    h2o_timeout_unlink(&c->idle_timer);
    return c;
}

cph_upconn_t *cph_upconn_new(cph_pool_t *pool, h2o_socket_t *sock)
{
    cph_upconn_t *c = h2o_mem_alloc(sizeof(*c));

    memset(c, 0, sizeof(*c));
    c->sock = sock;
    c->pool = pool;
    c->idle_timer.cb = on_idle_timeout;
    sock->data = c;
    return c;
}

void cph_proxy_worker_init(cph_worker_t *w)
{
    struct st_cph_proxy_worker_t *pw = h2o_mem_alloc(sizeof(*pw));

    memset(pw, 0, sizeof(*pw));
    pw->worker = w;
    h2o_timeout_init(w->ctx.loop, &pw->idle_timeout, CPH_POOL_KEEPALIVE_MS);
    w->proxy = pw;
}

void cph_proxy_worker_dispose(cph_worker_t *w)
{
    struct st_cph_proxy_worker_t *pw = w->proxy;

    if (pw == NULL)
        return;
    for (size_t i = 0; i != pw->num_pools; ++i) {
        if (pw->pools[i] == NULL)
            continue;
        while (!h2o_linklist_is_empty(&pw->pools[i]->idle))
            cph_upconn_close(H2O_STRUCT_FROM_MEMBER(cph_upconn_t, link, pw->pools[i]->idle.next));
        free(pw->pools[i]);
    }
    h2o_timeout_dispose(w->ctx.loop, &pw->idle_timeout);
    for (size_t i = 0; i != pw->num_timeouts; ++i) {
        h2o_timeout_dispose(w->ctx.loop, &pw->timeouts[i]->timeout);
        free(pw->timeouts[i]);
    }
    free(pw->pools);
    free(pw->timeouts);
    free(pw);
    w->proxy = NULL;
}

cph_pool_t *cph_proxy_pool_get(struct st_cph_proxy_worker_t *pw, const cph_target_t *t)
{
    if (t->pool_id >= pw->num_pools) {
        size_t n = t->pool_id + 16;
        pw->pools = h2o_mem_realloc(pw->pools, sizeof(*pw->pools) * n);
        memset(pw->pools + pw->num_pools, 0, sizeof(*pw->pools) * (n - pw->num_pools));
        pw->num_pools = n;
    }
    if (pw->pools[t->pool_id] == NULL) {
        cph_pool_t *pool = h2o_mem_alloc(sizeof(*pool));
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV}, *res;
        char port[8];
        memset(pool, 0, sizeof(*pool));
        h2o_linklist_init_anchor(&pool->idle);
        snprintf(port, sizeof(port), "%u", (unsigned)t->port);
        if (getaddrinfo(t->host.base, port, &hints, &res) == 0) { /* numeric: no lookup, never blocks */
            memcpy(&pool->addr, res->ai_addr, res->ai_addrlen);
            pool->addrlen = res->ai_addrlen;
            freeaddrinfo(res);
        }
        pw->pools[t->pool_id] = pool;
    }
    return pw->pools[t->pool_id];
}

/* What filter/fetch.c shares of the pools (declared in filter/fetch.h): a connection leaves a pool as a bare socket and
 * comes back as one, so the proxy's own exchange keeps its cph_upconn_t and pays nothing for the sharing. */
h2o_socket_t *cph_proxy_pool_take(cph_worker_t *w, const cph_target_t *t)
{
    cph_upconn_t *c = cph_pool_pop(cph_proxy_pool_get(w->proxy, t));
    h2o_socket_t *sock;

    if (c == NULL)
        return NULL;
    sock = c->sock;
    h2o_socket_read_stop(sock);
    sock->data = NULL;
    free(c);
    return sock;
}

void cph_proxy_pool_give(cph_worker_t *w, const cph_target_t *t, h2o_socket_t *sock)
{
    cph_upconn_return(w->proxy, cph_upconn_new(cph_proxy_pool_get(w->proxy, t), sock));
}

const struct sockaddr *cph_proxy_pool_addr(cph_worker_t *w, const cph_target_t *t, socklen_t *len)
{
    cph_pool_t *pool = cph_proxy_pool_get(w->proxy, t);

    *len = pool->addrlen;
    return pool->addrlen != 0 ? (const struct sockaddr *)&pool->addr : NULL;
}

cph_timeout_ctx_t *cph_proxy_timeout_ctx(struct st_cph_proxy_worker_t *pw, uint64_t ms)
{
    cph_timeout_ctx_t *t;

    if (ms == 0)
        ms = 1;
    for (size_t i = 0; i != pw->num_timeouts; ++i)
        if (pw->timeouts[i]->ms == ms)
            return pw->timeouts[i];
    t = h2o_mem_alloc(sizeof(*t));
    memset(t, 0, sizeof(*t));
    t->ms = ms;
    h2o_timeout_init(pw->worker->ctx.loop, &t->timeout, ms);
    pw->timeouts = h2o_mem_realloc(pw->timeouts, sizeof(*pw->timeouts) * (pw->num_timeouts + 1));
    pw->timeouts[pw->num_timeouts++] = t;
    return t;
}
