"""Power profiles look like the devices they stand for, and repeat exactly for one seed."""
import pytest

from host_tools.emulator.profiles import EvProfile, ProfileError, PvProfile, V2hProfile, make_profile
from host_tools.emulator.simclock import parse_start

DAY = 86400


def day_start(iso):
    return parse_start(iso) // 1000


def day_watts(profile, iso, step=1):
    t0 = day_start(iso)
    return [profile.power_w(t0 + s) for s in range(0, DAY, step)]


@pytest.mark.parametrize("iso", ["2026-06-21", "2026-12-21", "2027-03-20"])
@pytest.mark.parametrize("seed", [1, 7])
def test_pv_exports_only_and_is_zero_at_night(iso, seed):
    w = day_watts(PvProfile(seed=seed), iso, step=5)
    per_hour = 3600 // 5
    assert max(w) == 0  # export only: never imports
    assert all(x == 0 for x in w[: 3 * per_hour]), "00:00-03:00 JST must be dark"
    assert all(x == 0 for x in w[21 * per_hour :]), "21:00-24:00 JST must be dark"
    assert min(w) < -1000  # it does produce in daytime
    assert min(w) >= -5000  # clipped at the inverter rating
    noon = w[11 * per_hour : 13 * per_hour]
    morning = w[6 * per_hour : 7 * per_hour]
    assert sum(noon) / len(noon) < sum(morning) / len(morning)  # more export at noon than at 6-7


def test_pv_summer_day_is_longer_and_brighter_than_winter_day():
    p = PvProfile(clouds=0)
    summer = day_watts(p, "2026-06-21", 10)
    winter = day_watts(p, "2026-12-21", 10)
    assert sum(1 for x in summer if x) > sum(1 for x in winter if x) * 1.3
    assert sum(summer) < sum(winter) * 1.5  # export is negative: summer exports more


def test_pv_clouds_only_take_power_away():
    clear = PvProfile(clouds=0, seed=3)
    cloudy = PvProfile(clouds=0.5, seed=3)
    t0 = day_start("2026-05-01")
    shaded = 0
    for s in range(5 * 3600, 19 * 3600, 7):
        c, k = clear.power_w(t0 + s), cloudy.power_w(t0 + s)
        assert c <= k <= 0  # both export; clouds never add power
        shaded += k > c * 0.95
    assert shaded > 50  # passing clouds are there


def test_ev_sessions_import_3_to_6_kw_and_nothing_between():
    p = EvProfile(seed=5)
    t0 = day_start("2026-11-01")
    sessions = 0
    for d in range(7):
        w = [p.power_w(t0 + d * DAY + s) for s in range(0, DAY, 7)]
        assert all(x == 0 or 3000 <= x <= 6000 for x in w)
        for start, end, watts in p.sessions(t0 // DAY + d):
            sessions += 1
            assert 3000 <= watts <= 6000 and watts % 100 == 0
            assert 4000 * 3600 <= (end - start) * watts <= 25000 * 3600 + watts  # 4-25 kWh per session
            assert p.power_w(start) == watts and p.power_w(end - 1) == watts and p.power_w(end) != watts
    assert sessions >= 4


def test_v2h_goes_both_ways():
    w = day_watts(V2hProfile(seed=2), "2026-08-01", 10)
    assert max(w) >= 3000 and min(w) <= -2000
    assert all(x == 0 or 2000 <= abs(x) <= 6000 for x in w)


@pytest.mark.parametrize("spec", ["pv", "ev", "v2h"])
def test_same_seed_same_power_other_seed_other_power(spec):
    a, b, c = make_profile(spec, 11), make_profile(spec, 11), make_profile(spec, 12)
    t0 = day_start("2026-07-07")
    wa = [a.power_w(t0 + s) for s in range(0, 3 * DAY, 60)]
    assert wa == [b.power_w(t0 + s) for s in range(0, 3 * DAY, 60)]
    assert wa != [c.power_w(t0 + s) for s in range(0, 3 * DAY, 60)]
    # evaluation order does not matter (pure function of the second)
    assert [a.power_w(t0 + s) for s in reversed(range(0, 3 * DAY, 60))] == wa[::-1]


def test_profile_specs():
    assert make_profile("const:w=-1500").power_w(123) == -1500
    p = make_profile("pv:peak=3000,clouds=0.1,rating=2500", seed=4)
    assert (p.peak, p.rating, p.clouds, p.seed) == (3000, 2500, 0.1, 4)
    for bad in ["sun", "pv:peak", "pv:peak=x", "pv:colour=1", "pv:clouds=1.5", "ev:min_w=7000"]:
        with pytest.raises(ProfileError):
            make_profile(bad)
