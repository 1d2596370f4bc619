"""The soak's pass rules, on made-up samples: a slope is a slope, a leak is a leak."""

from __future__ import annotations

from tests.soak.sampler import Sample, tables_of
from tests.soak.verdict import Scale, rss_series, short_bound, slope_per_hour, table_growth


def samples(rss: list[float], views: list[int], pids: list[int] | None = None) -> list[Sample]:
    pids = pids or [100] * len(rss)
    return [
        Sample(10.0 * i, [r, 50.0], [30, 3], [p, 200], 0, {"service_views": v}, 300)
        for i, (r, v, p) in enumerate(zip(rss, views, pids, strict=True))
    ]


def test_the_slope_is_least_squares_per_hour() -> None:
    assert slope_per_hour([(0, 10.0), (3600, 11.0), (7200, 12.0)]) == 1.0
    # A zigzag rising 2 MiB per 20 s on average: 0.04 MiB/s by least squares.
    assert slope_per_hour([(0, 10.0), (10, 12.0), (20, 10.0), (30, 12.0)]) == 144.0


def test_warm_up_is_left_out_and_a_restarted_replica_starts_its_curve_over() -> None:
    run = samples([10, 30, 50, 50, 50, 80, 80], [0] * 7, pids=[1, 1, 1, 1, 1, 2, 2])
    assert rss_series(run, 0, since=20) == [(50.0, 80.0), (60.0, 80.0)]
    flat = samples([10, 30, 50, 50, 50], [0] * 5)
    assert slope_per_hour(rss_series(flat, 0, since=20)) == 0.0


def test_a_table_that_wanders_with_the_churn_passes_one_that_climbs_fails() -> None:
    wandering = table_growth(samples([1.0] * 6, [300, 310, 290, 320, 300, 315]), 20, churning=20)
    assert not wandering[0].grows
    climbing = table_growth(samples([1.0] * 6, [300, 310, 330, 350, 370, 390]), 20, churning=20)
    assert climbing[0].grows and climbing[0].per_hour > 0


def test_the_hour_is_judged_at_one_mib_per_hour_and_three_minutes_by_their_noise() -> None:
    hour = Scale.of(60)
    assert (hour.standing, hour.warmup_minutes, hour.slope_bound) == (5000, 10.0, 1.0)
    short = Scale.of(3)
    assert (short.standing, short.warmup_minutes) == (300, 1.0)
    assert short.slope_bound == short_bound(2.0) == 60.0


def test_table_sizes_are_read_from_the_debug_gauges() -> None:
    text = 'lbipam_debug_table_entries{table="claims"} 12.0\nlbipam_leader 1.0\n'
    assert tables_of(text) == {"claims": 12}
