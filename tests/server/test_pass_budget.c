/*
 * test_pass_budget.c - how many tokens the scheduler lets into a forward
 * pass: a whole batch with nothing decoding, a small prompt chunk while
 * streams decode, and a whole batch again ("catch-up") once more sequences
 * wait for their prompt than decode (--waiting-ratio).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/sched.h"

static srv_sched_params params(uint32_t n_batch, uint32_t chunk, float ratio)
{
    srv_sched_params p = {0};
    p.n_parallel = 16;
    p.n_batch = n_batch;
    p.n_prefill_busy = chunk;
    p.waiting_ratio = ratio;
    return p;
}

static void nothing_decoding_takes_the_batch(void **state)
{
    (void)state;
    srv_sched_params p = params(512, 8, 1.0f);
    bool cu = true;
    assert_int_equal(srv_pass_budget(&p, 0, 4, &cu), 512);
    assert_false(cu);
}

static void decoding_streams_get_a_small_chunk(void **state)
{
    (void)state;
    srv_sched_params p = params(512, 8, 1.0f);
    bool cu = true;
    /* as many waiting as decoding is not more: the chunk stays small */
    assert_int_equal(srv_pass_budget(&p, 1, 1, &cu), 1 + 8);
    assert_false(cu);
    assert_int_equal(srv_pass_budget(&p, 11, 5, &cu), 11 + 8);
    assert_false(cu);
    assert_int_equal(srv_pass_budget(&p, 16, 0, &cu), 16 + 8);
    assert_false(cu);
}

static void more_waiting_than_decoding_catches_up(void **state)
{
    (void)state;
    srv_sched_params p = params(512, 8, 1.0f);
    bool cu = false;
    assert_int_equal(srv_pass_budget(&p, 1, 2, &cu), 512);
    assert_true(cu);
    assert_int_equal(srv_pass_budget(&p, 3, 13, &cu), 512);
    assert_true(cu);
    /* a lower ratio catches up sooner, a higher one later */
    p.waiting_ratio = 0.25f;
    assert_int_equal(srv_pass_budget(&p, 11, 5, &cu), 512);
    assert_true(cu);
    p.waiting_ratio = 4.0f;
    assert_int_equal(srv_pass_budget(&p, 3, 12, &cu), 3 + 8);
    assert_false(cu);
    assert_int_equal(srv_pass_budget(&p, 3, 13, &cu), 512);
    assert_true(cu);
}

static void ratio_zero_never_catches_up(void **state)
{
    (void)state;
    srv_sched_params p = params(512, 8, 0.0f);
    bool cu = true;
    assert_int_equal(srv_pass_budget(&p, 1, 15, &cu), 1 + 8);
    assert_false(cu);
}

static void chunk_zero_or_small_batch(void **state)
{
    (void)state;
    bool cu = true;
    srv_sched_params p = params(64, 0, 1.0f); /* --prefill-chunk 0: no limit */
    assert_int_equal(srv_pass_budget(&p, 4, 1, &cu), 64);
    assert_false(cu);
    /* the chunk never takes the pass past the batch (the budget alone: the
     * scheduler itself wants n_batch > n_parallel, not so here) */
    p = params(10, 8, 1.0f);
    cu = true;
    assert_int_equal(srv_pass_budget(&p, 4, 1, &cu), 10);
    assert_false(cu);
    p = params(17, 65536, 0.0f);
    cu = true;
    assert_int_equal(srv_pass_budget(&p, 16, 1, &cu), 17);
    assert_false(cu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nothing_decoding_takes_the_batch),
        cmocka_unit_test(decoding_streams_get_a_small_chunk),
        cmocka_unit_test(more_waiting_than_decoding_catches_up),
        cmocka_unit_test(ratio_zero_never_catches_up),
        cmocka_unit_test(chunk_zero_or_small_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
