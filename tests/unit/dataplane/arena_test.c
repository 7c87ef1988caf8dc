/*
 * arena_test: the snapshot arena hands out zeroed, aligned, non-overlapping memory across chunk boundaries and
 * frees it all in one call (ASan reports any leak or overlap).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "dataplane/core/arena.h"

static void test_small_allocations_are_zeroed_and_aligned(void **state)
{
    cph_arena_t a;
    (void)state;

    cph_arena_init(&a);
    for (size_t i = 1; i < 200; ++i) {
        unsigned char *p = cph_arena_alloc(&a, i);
        assert_int_equal((uintptr_t)p % 16, 0);
        for (size_t j = 0; j < i; ++j)
            assert_int_equal(p[j], 0);
        memset(p, 0xab, i); /* ASan flags an overlap with a neighbour or a write past the end */
    }
    assert_true(a.bytes >= 199 * 200 / 2);
    cph_arena_dispose(&a);
    assert_null(a.chunks);
}

static void test_allocation_larger_than_a_chunk(void **state)
{
    cph_arena_t a;
    (void)state;

    cph_arena_init(&a);
    char *small = cph_arena_alloc(&a, 10);
    char *big = cph_arena_alloc(&a, 1 << 20);
    memset(big, 1, 1 << 20);
    assert_int_equal(small[0], 0);
    cph_arena_dispose(&a);
}

static void test_strdup_copies_and_terminates(void **state)
{
    cph_arena_t a;
    (void)state;

    cph_arena_init(&a);
    const char *src = "route-name";
    char *s = cph_arena_strdup(&a, src);
    assert_string_equal(s, src);
    assert_ptr_not_equal(s, src);
    char *part = cph_arena_strndup(&a, "abcdef", 3);
    assert_string_equal(part, "abc");
    cph_arena_dispose(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_allocations_are_zeroed_and_aligned),
        cmocka_unit_test(test_allocation_larger_than_a_chunk),
        cmocka_unit_test(test_strdup_copies_and_terminates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
