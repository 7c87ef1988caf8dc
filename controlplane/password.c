/*
 * password: argon2id password hashing for the control plane's users.
 *
 * Parameters: t=3 passes over m=64 MiB with p=1 lane - RFC 9106's second recommended setting (t=3, m=64 MiB) with
 * one lane instead of four, because the control plane runs on small machines and one admin write should cost one
 * core, not all of them; OWASP's floor for argon2id is m=19 MiB, t=2. A hash costs about 0.1-0.2 s, which is what a
 * login costs too. The parameters are part of the encoded hash, so raising them later keeps old hashes verifiable.
 *
 * Memory: each running hash holds 64 MiB. At most CPH_PASSWORD_CONCURRENT run at once (a counting gate), so 64
 * concurrent admin connections cannot ask for 4 GiB. The password length is capped (1024 bytes) so nobody can make
 * the pre-hash arbitrarily long either. No function here logs a password or a hash.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <argon2.h>
#include <openssl/rand.h>
#include "controlplane/password.h"
#include "proto/log.h"

#define MODULE "cp/password"
#define SALT_LEN 16
#define HASH_LEN 32

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_running;

static void gate_enter(void)
{
    pthread_mutex_lock(&gate_lock);
    while (gate_running >= CPH_PASSWORD_CONCURRENT)
        pthread_cond_wait(&gate_cond, &gate_lock);
    ++gate_running;
    pthread_mutex_unlock(&gate_lock);
}

static void gate_leave(void)
{
    pthread_mutex_lock(&gate_lock);
    --gate_running;
    pthread_cond_signal(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

char *cph_password_hash(const char *password, size_t len, const char *path, cph_error_t *err)
{
    unsigned char salt[SALT_LEN];
    size_t cap =
        argon2_encodedlen(CPH_PASSWORD_T_COST, CPH_PASSWORD_M_COST_KIB, CPH_PASSWORD_PARALLELISM, SALT_LEN, HASH_LEN, Argon2_id);
    char *encoded;
    int rc;

    if (len < CPH_PASSWORD_MIN || len > CPH_PASSWORD_MAX || memchr(password, '\0', len) != NULL) {
        cph_error_set(err, "invalid", path, "a password must be %d to %d bytes", CPH_PASSWORD_MIN, CPH_PASSWORD_MAX);
        return NULL;
    }
    if (RAND_bytes(salt, sizeof(salt)) != 1) {
        cph_log_error(MODULE, "RAND_bytes failed");
        cph_error_set(err, "internal", "", "cannot hash the password");
        return NULL;
    }
    if ((encoded = malloc(cap)) == NULL)
        cph_fatal(MODULE, "out of memory");
    gate_enter();
    rc = argon2id_hash_encoded(CPH_PASSWORD_T_COST, CPH_PASSWORD_M_COST_KIB, CPH_PASSWORD_PARALLELISM, password, len, salt,
                               sizeof(salt), HASH_LEN, encoded, cap);
    gate_leave();
    if (rc != ARGON2_OK) {
        cph_log_error(MODULE, "argon2id failed: %s", argon2_error_message(rc));
        free(encoded);
        cph_error_set(err, "internal", "", "cannot hash the password");
        return NULL;
    }
    return encoded;
}

int cph_password_verify(const char *encoded, const char *password, size_t len)
{
    int rc;

    if (encoded == NULL || strncmp(encoded, "$argon2id$", 10) != 0 || len > CPH_PASSWORD_MAX)
        return 0;
    gate_enter();
    rc = argon2id_verify(encoded, password, len);
    gate_leave();
    return rc == ARGON2_OK;
}
