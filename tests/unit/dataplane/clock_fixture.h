/*
 * clock_fixture: the monotonic clock and the short sleeps the data-plane tests wait with (deadlines, polling loops).
 * Header-only so each test executable stays one file plus what it tests.
 */
#ifndef CPH_TEST_CLOCK_FIXTURE_H
#define CPH_TEST_CLOCK_FIXTURE_H

#include <stdint.h>
#include <time.h>

/* Milliseconds of CLOCK_MONOTONIC: for deadlines, never for wall-clock values. */
static inline uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

#endif
