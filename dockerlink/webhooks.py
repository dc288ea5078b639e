"""Webhooks: every recorded event POSTed to ``webhook_url``, signed, in order, from a disk queue.

**The request.** ``POST webhook_url`` with the event as a JSON object (the event log's form,
``event_id`` included), ``Content-Type: application/json``, and
``X-Dockerlink-Signature: sha256=<hex HMAC-SHA256 of the exact body, keyed with webhook_secret>``;
also ``X-Dockerlink-Event`` (the type) and ``X-Dockerlink-Event-Id``. Any 2xx answer is a
delivery; anything else, a timeout (``webhook_timeout``) or a connection error is retried.

**Order and retries.** One event at a time, oldest first: a later event waits while an earlier one
is retried, after ``webhook_retry_delay`` seconds, then twice as long each time (at most
``MAX_DELAY_S``). An event still undelivered ``MAX_AGE_S`` after it was queued is dropped, with a
log line and ``dockerlink_webhook_dropped_total`` (an event queued longer ago than that, while
dockerlink was down, is tried once).

**On disk** (``<data_dir>/webhooks``): ``queue-<first seq>.jsonl`` holds the queued events, one
``{"seq": n, "queued": <unix s>, "event": {...}}`` per line, appended before the event is in the
event log (see :mod:`dockerlink.events`); ``delivered`` holds the ``seq`` of the last event
delivered or dropped, replaced atomically (write, then rename) after each. At start the queue is
read back from the files: a restart, even ``kill -9``, loses nothing queued. An event whose POST
succeeded just before a kill, before ``delivered`` was replaced, is sent again after the restart:
delivery is at least once, and receivers drop repeats by ``event_id``. A file whose events are all
delivered is deleted once a newer file is in use (a new file every ``EVENTS_PER_FILE`` events).
Disk work runs in the event log's writer thread, never on the event loop; the deliveries run in
their own task, so no API answer waits for a receiver.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from . import __version__
from .journal import Appender, JournalLocked, lock_directory, read_objects
from .prometheus import Exposition

__all__ = [
    "WebhookOutbox",
    "open_outbox",
    "send_test",
    "shown_url",
    "sign",
    "url_secrets",
]

log = logging.getLogger("dockerlink.webhooks")

SIGNATURE_HEADER = "X-Dockerlink-Signature"
MAX_AGE_S = 3600.0
MAX_DELAY_S = 300.0
EVENTS_PER_FILE = 1000
_QUEUE_FILE = re.compile(r"queue-([0-9]{12})\.jsonl")
_CURSOR = "delivered"
#: What a password in webhook_url is shown as.
_HIDDEN = "***"


def url_secrets(url: str) -> list[str]:
    """The password in ``url``'s ``user:password@`` as it stands in a URL (``:<password>@``,
    as written and decoded), for the logs' redaction: the bare password may be a short,
    common word."""
    parsed = httpx.URL(url)
    if not parsed.password:
        return []
    written = parsed.userinfo.decode("ascii", "replace").partition(":")[2]
    return sorted({f":{parsed.password}@", f":{written}@"})


def shown_url(url: str) -> str:
    """``url`` as it may be shown: a password in it replaced by ``***``."""
    parsed = httpx.URL(url)
    if not parsed.password:
        return url
    return str(parsed.copy_with(username=parsed.username, password=_HIDDEN))


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _headers(body: bytes, secret: str, kind: str, event_id: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": f"dockerlink/{__version__}",
        SIGNATURE_HEADER: sign(body, secret),
        "X-Dockerlink-Event": kind,
        "X-Dockerlink-Event-Id": event_id,
    }


@dataclass(slots=True)
class _Pending:
    seq: int
    queued: float
    body: bytes
    kind: str
    event_id: str


class WebhookOutbox:
    """The queue of events to deliver (memory and disk) and the task that delivers them."""

    def __init__(
        self,
        root: Path | None,
        url: str,
        secret: str,
        *,
        timeout_s: float = 10.0,
        first_delay_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.url = url
        #: How the URL is logged (its password hidden).
        self.shown_url = shown_url(url)
        self._secret = secret
        self._timeout_s = timeout_s
        self._first_delay_s = first_delay_s
        self._clock = clock
        self._pending: deque[_Pending] = deque()
        self._next_seq = 1
        #: Queue files by their first seq, with their last seq.
        self._files: dict[int, int] = {}
        self._current: int | None = None
        self._current_count = 0
        self._lock_fd: int | None = None
        self._wake = asyncio.Event()
        self._appender = Appender()  # writer thread only
        self.delivered = 0
        self.failures = 0
        self.dropped = 0

    # -- life cycle (blocking: run in a thread) ---------------------------------------------

    def open(self) -> None:
        if self.root is None:
            return
        self._lock_fd = lock_directory(self.root)
        cursor = _read_cursor(self.root / _CURSOR)
        newest = cursor
        for start in sorted(
            int(m.group(1)) for name in os.listdir(self.root) if (m := _QUEUE_FILE.fullmatch(name))
        ):
            last = start
            for line in read_objects(self.root / _queue_name(start)):
                seq, queued, event = line.get("seq"), line.get("queued"), line.get("event")
                if not isinstance(seq, int) or not isinstance(event, dict):
                    continue
                last = max(last, seq)
                newest = max(newest, seq)
                if seq > cursor:
                    moment = float(queued) if isinstance(queued, int | float) else self._clock()
                    self._pending.append(self._entry(seq, moment, event))
            self._files[start] = last
        self._next_seq = newest + 1
        if self._pending:
            log.info(
                "webhooks: %d event(s) queued before the restart to deliver", len(self._pending)
            )

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @staticmethod
    def _entry(seq: int, queued: float, event: dict[str, Any]) -> _Pending:
        return _Pending(
            seq, queued, orjson.dumps(event), str(event.get("type")), str(event.get("event_id"))
        )

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- queueing (event loop; returns the disk work) -------------------------------------------

    def add(self, event: dict[str, Any]) -> Callable[[], None]:
        seq = self._next_seq
        self._next_seq += 1
        queued = self._clock()
        self._pending.append(self._entry(seq, queued, event))
        self._wake.set()
        if self.root is None:
            return _nothing
        if self._current is None or self._current_count >= EVENTS_PER_FILE:
            self._current, self._current_count = seq, 0
        self._current_count += 1
        self._files[self._current] = seq
        path = self.root / _queue_name(self._current)
        line = orjson.dumps({"seq": seq, "queued": queued, "event": event}) + b"\n"

        def write() -> None:
            try:
                self._appender.append(path, line)
            except OSError as exc:
                log.error("webhooks: cannot queue event %s on disk: %s", seq, exc)

        return write

    def _done(self, seq: int) -> Callable[[], None]:
        """The disk work after ``seq`` was delivered or dropped: the cursor, then spent files."""
        if self.root is None:
            return _nothing
        root = self.root
        spent = [s for s, last in self._files.items() if last <= seq and s != self._current]
        for start in spent:
            del self._files[start]

        def write() -> None:
            try:
                temporary = root / f".{_CURSOR}.tmp"
                temporary.write_text(f"{seq}\n")
                os.replace(temporary, root / _CURSOR)
                for start in spent:
                    (root / _queue_name(start)).unlink(missing_ok=True)
            except OSError as exc:
                log.error("webhooks: cannot record delivery of event %s: %s", seq, exc)

        return write

    # -- delivering -------------------------------------------------------------------------------

    async def run(self, writer: concurrent.futures.Executor) -> None:
        """Deliver forever (cancel to stop)."""
        loop = asyncio.get_running_loop()
        delay = self._first_delay_s
        failing = False
        async with httpx.AsyncClient(
            timeout=self._timeout_s, trust_env=False, follow_redirects=False
        ) as client:
            while True:
                if not self._pending:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                head = self._pending[0]
                problem = await self._post(client, head)
                if problem is None:
                    self.delivered += 1
                    if failing:
                        log.info("webhooks: %s answers again", self.shown_url)
                        failing = False
                elif self._clock() - head.queued >= MAX_AGE_S:
                    self.failures += 1
                    self.dropped += 1
                    log.error(
                        "webhooks: dropped event %s (%s) after retrying for an hour: %s",
                        head.event_id,
                        head.kind,
                        problem,
                    )
                else:
                    self.failures += 1
                    if not failing:
                        log.warning(
                            "webhooks: delivery to %s failed, retrying: %s",
                            self.shown_url,
                            problem,
                        )
                        failing = True
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, max(MAX_DELAY_S, self._first_delay_s))
                    continue
                delay = self._first_delay_s
                self._pending.popleft()
                await loop.run_in_executor(writer, self._done(head.seq))

    async def _post(self, client: httpx.AsyncClient, entry: _Pending) -> str | None:
        """None when delivered, else why not."""
        headers = _headers(entry.body, self._secret, entry.kind, entry.event_id)
        try:
            # httpx's timeout bounds each connect, read and write, not the whole request: a
            # receiver that trickles its answer would hold the queue up for as long as it likes.
            async with asyncio.timeout(self._timeout_s):
                response = await client.post(self.url, content=entry.body, headers=headers)
        except TimeoutError:
            return f"no whole answer within {self._timeout_s:g} s"
        except (httpx.HTTPError, OSError) as exc:  # OSError: httpx lets ssl.SSLError through
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if 200 <= response.status_code < 300:
            return None
        return f"answered {response.status_code}"

    def write_metrics(self, out: Exposition) -> None:
        for name, kind, text, value in (
            ("dockerlink_webhook_deliveries_total", "counter", "Events delivered.", self.delivered),
            (
                "dockerlink_webhook_failures_total",
                "counter",
                "Delivery attempts that failed (each is retried, or dropped after an hour).",
                self.failures,
            ),
            (
                "dockerlink_webhook_dropped_total",
                "counter",
                "Events dropped after an hour of failed deliveries.",
                self.dropped,
            ),
            (
                "dockerlink_webhook_queue_length",
                "gauge",
                "Events waiting for delivery.",
                self.pending,
            ),
        ):
            out.family(name, kind, text)
            out.sample(name, (), value)


def _queue_name(start: int) -> str:
    return f"queue-{start:012d}.jsonl"


def _read_cursor(path: Path) -> int:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return 0
    return int(text) if text.isdigit() else 0


def _nothing() -> None:
    return None


def open_outbox(
    root: Path, url: str, secret: str, *, timeout_s: float, first_delay_s: float
) -> WebhookOutbox:
    """The queue on ``root``; in memory only when another process holds it (logged)."""
    outbox = WebhookOutbox(root, url, secret, timeout_s=timeout_s, first_delay_s=first_delay_s)
    try:
        outbox.open()
    except JournalLocked as exc:
        log.error("webhooks: %s: this process queues deliveries in memory only", exc)
        outbox = WebhookOutbox(None, url, secret, timeout_s=timeout_s, first_delay_s=first_delay_s)
    return outbox


async def send_test(url: str, secret: str, *, timeout_s: float) -> tuple[str | None, str]:
    """POST a signed ``test`` event (``dockerlink check``): ``(problem, "")`` or ``(None, how)``."""
    now = time.time()
    event_id = f"test-{int(now * 1e9)}"
    event = {"time": now, "id": "", "name": "", "type": "test", "event_id": event_id}
    body = orjson.dumps(event)
    shown = shown_url(url)
    try:
        async with (
            asyncio.timeout(timeout_s),
            httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client,
        ):
            response = await client.post(
                url, content=body, headers=_headers(body, secret, "test", event_id)
            )
    except TimeoutError:
        return f"{shown} gave no whole answer within {timeout_s:g} s", ""
    except httpx.HTTPError as exc:
        return f"{shown} is unreachable: {type(exc).__name__}: {exc}".rstrip(": "), ""
    answer = f"{shown} answered {response.status_code} to a signed test event"
    return (None, answer) if 200 <= response.status_code < 300 else (answer, "")
