/*
 * sha256: SHA-256 with the algorithm fetched once and a digest context per thread (sha256.h). The context is freed
 * with its thread (a pthread key destructor), so worker threads that end leak nothing.
 */
#include <pthread.h>
#include <openssl/evp.h>
#include "proto/log.h"
#include "dataplane/core/sha256.h"

#define MODULE "dp/core/sha256"

static EVP_MD *md;
static pthread_key_t ctx_key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void free_ctx(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void init_once(void)
{
    if ((md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL || pthread_key_create(&ctx_key, free_ctx) != 0)
        cph_fatal(MODULE, "SHA-256 unavailable");
}

void cph_sha256(const void *data, size_t len, unsigned char out[CPH_SHA256_LEN])
{
    EVP_MD_CTX *ctx;
    unsigned n = 0;

    pthread_once(&once, init_once);
    if ((ctx = pthread_getspecific(ctx_key)) == NULL) {
        if ((ctx = EVP_MD_CTX_new()) == NULL || pthread_setspecific(ctx_key, ctx) != 0)
            cph_fatal(MODULE, "out of memory");
    }
    if (EVP_DigestInit_ex2(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, data, len) != 1 || EVP_DigestFinal_ex(ctx, out, &n) != 1 ||
        n != CPH_SHA256_LEN)
        cph_fatal(MODULE, "SHA-256 failed");
}
