"""The soak's pass rules on its samples: the RSS slope after warm-up, and tables that stay put.

Pure arithmetic on `Sample`s; what the cluster looks like at the end is `ending`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.soak.sampler import Sample

ALLOWED_RISE_MIB = 2.0  # over a short run's judged window (see `short_bound`)


@dataclass(frozen=True)
class Scale:
    """How big and how long: the full soak, or the version `make test` runs."""

    minutes: float
    standing: int  # Services that stay the whole run
    churning: int  # churned Services around this count
    rate: float  # churn edits per second
    warmup_minutes: float
    slope_bound: float  # MiB per hour, least squares over the samples after warm-up

    @classmethod
    def of(cls, minutes: float, standing: int | None = None, rate: float = 4.0) -> Scale:
        """A run of 30 minutes or more is judged like the hour: 10 minutes of warm-up and
        1 MiB/h. Shorter runs warm up for a third of their time, and their bound is what
        the samples can tell apart from noise (see `short_bound`)."""
        long = minutes >= 30
        standing = standing or (5000 if long else 300)
        warmup = 10.0 if long else minutes / 3
        bound = 1.0 if long else short_bound(minutes - warmup)
        return cls(minutes, standing, max(20, standing // 20), rate, warmup, bound)


def short_bound(window_minutes: float) -> float:
    """The slope bound, in MiB/h, for a judged window shorter than the hour's 50 minutes.

    The operator's RSS is flat to a few KiB between samples, but moves in steps of about
    1 MiB when the allocator takes a new arena (seen in the warm-up of the 3-minute runs). One
    such step in the middle of a 2-minute window reads as ~41 MiB/h by least squares, so the
    bound lets the fitted line rise by 2 MiB over the window (60 MiB/h for 2 minutes): one step
    passes, a steady climb of ~4 KiB per churned edit (at 4 edits/s) fails. Smaller leaks are
    the hour's to find; in a short run the table sizes are the sharper check.
    """
    return round(ALLOWED_RISE_MIB / (window_minutes / 60), 1)


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per hour; 0 for fewer than two."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread * 3600


def rss_series(samples: list[Sample], replica: int, since: float) -> list[tuple[float, float]]:
    """One replica's RSS after `since`, for one process: a restarted replica starts over."""
    last_pid = next((s.pids[replica] for s in reversed(samples) if s.pids[replica]), None)
    return [
        (s.at, rss)
        for s in samples
        if s.at >= since and (rss := s.rss_mib[replica]) is not None and s.pids[replica] == last_pid
    ]


@dataclass(frozen=True)
class TableGrowth:
    table: str
    start: int  # first sample after warm-up
    end: int  # last sample
    peak_warmup: int  # the largest seen during warm-up
    per_hour: float  # least-squares slope after warm-up
    allowed: int  # how far above max(start, warm-up peak) the end may be

    @property
    def grows(self) -> bool:
        return self.end > max(self.start, self.peak_warmup) + self.allowed


def table_growth(samples: list[Sample], since: float, churning: int) -> list[TableGrowth]:
    """Each table of the leader, judged against itself: after warm-up it may wander with the
    churned population (created and deleted around `churning`), never climb past it."""
    allowed = max(20, churning)
    names = sorted({name for s in samples for name in s.tables})
    found = []
    for name in names:
        before = [s.tables[name] for s in samples if s.at < since and name in s.tables]
        after = [
            (s.at, float(s.tables[name])) for s in samples if s.at >= since and name in s.tables
        ]
        if not after:
            continue
        found.append(
            TableGrowth(
                name,
                int(after[0][1]),
                int(after[-1][1]),
                max(before, default=0),
                round(slope_per_hour(after), 1),
                allowed,
            )
        )
    return found
