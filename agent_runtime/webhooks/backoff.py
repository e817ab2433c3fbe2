"""The retry schedule: exponential backoff with jitter, bounded in count and in time.

Defaults follow Rozper's promise (up to 8 retries within 24 hours): 5 min, 10, 20, … 640 min,
each scaled by a random factor in [1 - jitter, 1], so the worst case sums to ~21.3 h.
Tests inject a schedule in milliseconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 300.0
    factor: float = 2.0
    max_retries: int = 8
    window_s: float = 24 * 3600.0
    jitter: float = 0.5  # fraction of each delay that is randomised away (equal jitter)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.factor < 1 or self.max_retries < 0 or not 0 <= self.jitter < 1:
            raise ValueError("backoff: base_s > 0, factor >= 1, max_retries >= 0, 0 <= jitter < 1")

    def max_delay(self, retry: int) -> float:
        """The un-jittered delay before retry number `retry` (1-based)."""
        return self.base_s * self.factor ** (retry - 1)

    def min_delay(self, retry: int) -> float:
        return self.max_delay(retry) * (1 - self.jitter)

    def delay(self, retry: int) -> float:
        # Jitter spreads the retries of many events failing at once (an endpoint outage).
        return self.max_delay(retry) * (1 - self.jitter * self.rng.random())
