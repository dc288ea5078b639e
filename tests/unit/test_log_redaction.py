"""The API token is redacted from every log line, raw, URL-encoded or JSON-escaped."""

from __future__ import annotations

import io
import logging
from urllib.parse import quote, quote_plus

import orjson
import pytest

from dockerlink.logs import REDACTED, JsonFormatter, RedactingFormatter, configure_logging

TOKEN = 'tok+en/with="odd" chars-0123456789'


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("dockerlink.request", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(entry, key, value)
    return entry


@pytest.mark.parametrize(
    "form",
    [TOKEN, quote(TOKEN, safe=""), quote(TOKEN), quote_plus(TOKEN), quote(TOKEN).lower()],
)
def test_every_form_of_the_token_is_redacted(form: str) -> None:
    formatter = RedactingFormatter(logging.Formatter("%(message)s"), [TOKEN])
    line = formatter.format(record("[%s] GET /v1/container?token=%s 401", form, form))
    assert line == f"[{REDACTED}] GET /v1/container?token={REDACTED} 401"


def test_json_lines_are_redacted_in_message_fields_and_request_id() -> None:
    formatter = RedactingFormatter(JsonFormatter(), [TOKEN])
    line = formatter.format(
        record("GET /x?t=%s", TOKEN, request_id=TOKEN, fields={"path": f"/x?t={TOKEN}"})
    )
    entry = orjson.loads(line)
    assert entry["message"] == f"GET /x?t={REDACTED}"
    assert entry["request_id"] == REDACTED
    assert entry["path"] == f"/x?t={REDACTED}"
    assert "0123456789" not in line


def test_without_secrets_lines_are_unchanged() -> None:
    formatter = RedactingFormatter(logging.Formatter("%(message)s"), [])
    assert formatter.format(record("GET /v1/container 200")) == "GET /v1/container 200"


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_redacts_every_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("DEBUG", "text", [TOKEN])
    logging.getLogger("sanic.error").error("bad header %r", TOKEN)
    logging.getLogger("dockerlink.request").info("[%s] GET /", TOKEN)
    assert TOKEN not in stream.getvalue()
    assert stream.getvalue().count(REDACTED) == 2


def test_control_characters_are_escaped_but_line_breaks_and_tabs_kept() -> None:
    formatter = RedactingFormatter(logging.Formatter("%(message)s"), [TOKEN])
    line = formatter.format(record("GET /a\rINFO forged\x1b[2J\x9b31m\x00 %s\n  next\tline", TOKEN))
    assert line == f"GET /a\\x0dINFO forged\\x1b[2J\\x9b31m\\x00 {REDACTED}\n  next\tline"


@pytest.mark.parametrize(
    ("secret", "line"),
    [
        # An ASCII line: the quick look at its lower case finds the token in any case.
        (TOKEN, f"GET /x?t={TOKEN.upper()} 200"),
        (TOKEN, f"GET /x?t={quote(TOKEN, safe='').swapcase()} 200"),
        # A line with other characters: the pattern is asked, as their case folds differ
        # from str.lower()'s (U+017F, the long s, is an "s" to the pattern, not to lower()).
        ("secret-token-1", "GET /caf\u00e9?t=\u017fecret-token-1 200"),
        # A secret with other characters: its URL-encoded form in an ASCII line.
        ("stra\u00dfe-geheim-1", f"GET /x?t={quote('stra' + chr(0xDF) + 'e-geheim-1')} 200"),
    ],
)
def test_secrets_are_found_in_any_case_in_any_text(secret: str, line: str) -> None:
    formatter = RedactingFormatter(logging.Formatter("%(message)s"), [secret])
    redacted = formatter.format(record("%s", line))
    assert redacted.count(REDACTED) == 1
    assert redacted == formatter._pattern.sub(REDACTED, line)  # type: ignore[union-attr]


def test_a_line_without_a_secret_is_left_as_it_is() -> None:
    formatter = RedactingFormatter(logging.Formatter("%(message)s"), [TOKEN])
    line = "GET /v1/container?id=0123456789ab 200 0.4 ms"
    assert formatter.format(record("%s", line)) == line
