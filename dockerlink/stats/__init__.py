"""Stats history: the sampler task, the maths of each figure, and the on-disk history store.

- :mod:`.resources`: pure functions, the figures ``docker stats`` shows;
- :mod:`.series`: a sample, compact in-memory series, bucket points, the route's JSON;
- :mod:`.chunks`: a tier's history in memory as encoded lines, decoded on demand;
- :mod:`.codec` and :mod:`.store`: the JSON-lines files (format and retention in ``store``);
- :mod:`.sampler`: the one background task that samples every container.
"""

from .sampler import Sampler, call_timeout_for
from .series import Sample
from .store import SCALES, HistoryStore, StoreLocked, open_history

__all__ = [
    "SCALES",
    "HistoryStore",
    "Sample",
    "Sampler",
    "StoreLocked",
    "call_timeout_for",
    "open_history",
]
