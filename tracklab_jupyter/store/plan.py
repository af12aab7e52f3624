"""Choosing the tier that answers a query.

Without a step, the finest tier holding data back to ``start`` is used, at its own
resolution (raw samples as taken, or 1-min / 1-h buckets). With a step, the coarsest tier
whose resolution is at most the step is used (least data to read), provided it holds data
back to ``start``; if none does, the finest tier that does, at its coarser resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracklab_jupyter.store.config import TIER_SECONDS, TIERS


@dataclass(frozen=True)
class Plan:
    tier: str
    #: Bin width in seconds; None means raw samples as taken.
    step: float | None
    #: Why the result is coarser than asked, when it is.
    note: str | None = None


def _covers(index: int, start: float, oldest: dict[str, float | None]) -> bool:
    """Whether tier ``TIERS[index]`` reaches back as far as the query needs: to ``start``,
    or to where the coarser tiers' data begins when that is later."""
    mine = oldest.get(TIERS[index])
    if mine is None:
        return False
    # A coarser tier's oldest bucket starts up to one bucket before its first data, so
    # compare with the bucket's end: a store younger than an hour must still read raw.
    coarser = [oldest[t] + TIER_SECONDS[t] for t in TIERS[index + 1:]  # type: ignore[operator]
               if oldest.get(t) is not None]
    if not coarser:
        return True
    slack = TIER_SECONDS[TIERS[index + 1]]
    return mine <= max(start, min(coarser)) + slack


def choose_tier(start: float, step: float | None, oldest: dict[str, float | None]) -> Plan:
    """The tier and step for a query starting at ``start`` (epoch s); ``oldest`` maps each
    tier to the time of its oldest data (None when empty)."""
    covering = [i for i in range(len(TIERS)) if _covers(i, start, oldest)]
    if not covering:
        return Plan("raw", step)
    if step is None:
        tier = TIERS[covering[0]]
        return Plan(tier, float(TIER_SECONDS[tier]) or None)
    fine_enough = [i for i in covering if TIER_SECONDS[TIERS[i]] <= step]
    if fine_enough:
        return Plan(TIERS[fine_enough[-1]], step)
    tier = TIERS[covering[0]]
    resolution = TIER_SECONDS[tier]
    return Plan(tier, float(resolution),
                f"step {step:g}s is finer than the data kept for this range: "
                f"{tier} rollups used, at {resolution}s")
