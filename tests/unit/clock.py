"""An injected clock for the stats history and the sampler."""

from __future__ import annotations

T0 = 1_764_201_600  # a multiple of every bucket and file period (midnight UTC)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now
