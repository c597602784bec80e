"""Backoff bounds and wrap-safe ticks: the delays a rejoin storm is spread with."""
from edge.backoff import (
    MAX_DELAY_MS, TICKS_PERIOD, Backoff, BackoffConfigError, ticks_add, ticks_diff,
)


def test_delays_double_until_the_cap_and_stay_within_half_to_full():
    b = Backoff(1000, 16000)
    caps = [1000, 2000, 4000, 8000, 16000, 16000, 16000]
    for cap in caps:
        lo = b.next_delay(0)
        assert lo == cap // 2
    b.reset()
    for cap in caps:
        hi = b.next_delay(cap - cap // 2)  # the largest jitter the modulus allows
        assert hi == cap


def test_jitter_from_any_caller_int_stays_in_range():
    b = Backoff(500, 30000)
    x = 12345
    for _ in range(200):
        x = (x * 1103515245 + 12345) & 0x3FFFFFFF  # a caller's cheap PRNG
        d = b.next_delay(x)
        assert 250 <= d <= 30000
    assert b.attempt == 200


def test_negative_rand_is_folded_not_a_crash():
    b = Backoff(1000, 1000)
    assert 500 <= b.next_delay(-7) <= 1000


def test_cap_at_2_pow_29_never_leaves_the_small_int_range():
    b = Backoff(1, MAX_DELAY_MS)
    for _ in range(40):
        d = b.next_delay(0x3FFFFFFF)
        assert 0 < d <= MAX_DELAY_MS
        assert b._cap <= MAX_DELAY_MS
    assert MAX_DELAY_MS == 1 << 29


def test_bad_configs_raise_the_typed_error():
    for base, cap in ((0, 10), (10, 5), (1, MAX_DELAY_MS + 1), (-1, 10)):
        try:
            Backoff(base, cap)
        except BackoffConfigError as e:
            assert e.kind == "backoff_config"
        else:
            assert False, (base, cap)


def test_ticks_wrap_like_micropython():
    assert TICKS_PERIOD == 1 << 30
    t = TICKS_PERIOD - 10
    later = ticks_add(t, 25)
    assert later == 15
    assert ticks_diff(later, t) == 25
    assert ticks_diff(t, later) == -25
    assert ticks_diff(5, 5) == 0
    # the largest distances that still order correctly
    assert ticks_diff(ticks_add(0, (1 << 29) - 1), 0) == (1 << 29) - 1
    assert ticks_diff(0, ticks_add(0, (1 << 29) - 1)) == -((1 << 29) - 1)
