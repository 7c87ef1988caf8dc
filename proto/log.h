/*
 * log: shared by both daemons. One JSON line per event on stderr (ts, level, module, msg[, req_id]). Never log tokens, keys or passwords.
 */
#ifndef CPH_LOG_H
#define CPH_LOG_H

typedef enum en_cph_log_level_t { CPH_LOG_DEBUG, CPH_LOG_INFO, CPH_LOG_WARN, CPH_LOG_ERROR } cph_log_level_t;

/** Lines below this level are dropped (default INFO; CEPHALO_LOG_LEVEL=debug|info|warn|error). */
void cph_log_set_level(cph_log_level_t level);
/** Writes one line atomically (a single write(2)); msg is JSON-escaped. Thread-safe. */
void cph_log(cph_log_level_t level, const char *module, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/** Logs at ERROR and aborts: only for out of memory and broken invariants. */
_Noreturn void cph_fatal(const char *module, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cph_log_info(module, ...) cph_log(CPH_LOG_INFO, module, __VA_ARGS__)
#define cph_log_warn(module, ...) cph_log(CPH_LOG_WARN, module, __VA_ARGS__)
#define cph_log_error(module, ...) cph_log(CPH_LOG_ERROR, module, __VA_ARGS__)
#define cph_log_debug(module, ...) cph_log(CPH_LOG_DEBUG, module, __VA_ARGS__)

#endif
