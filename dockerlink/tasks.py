"""Background tasks under supervision: a failure is logged, counted, and the task starts again.

Every long-running task of the service (the mirror, its reconcile, the sampler) runs through
:func:`supervise`, so that an unexpected exception never ends one silently: it is logged with its
traceback, counted in ``dockerlink_background_task_failures_total{task=...}``, and the task is
started again after a short back-off (doubled after each failure in a row, up to
``MAX_BACKOFF_S``; reset once the task has run for ``HEALTHY_AFTER_S``). A task that returns
normally has finished its work and is not started again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

__all__ = ["BACKOFF_S", "MAX_BACKOFF_S", "supervise"]

log = logging.getLogger("dockerlink")

BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
#: A task that ran this long before failing starts again after BACKOFF_S, not a longer delay.
HEALTHY_AFTER_S = 60.0


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    on_failure: Callable[[str], None],
    backoff_s: float = BACKOFF_S,
    max_backoff_s: float = MAX_BACKOFF_S,
) -> None:
    """Run ``run()`` until it returns or this is cancelled, starting it again after a failure.

    ``on_failure(name)`` is called for each unexpected exception (it counts them).
    """
    loop = asyncio.get_running_loop()
    delay = backoff_s
    while True:
        started = loop.time()
        try:
            await run()
            return
        except Exception:
            on_failure(name)
            if loop.time() - started >= HEALTHY_AFTER_S:
                delay = backoff_s
            log.exception("background task %s failed; starting it again in %g s", name, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_backoff_s)
