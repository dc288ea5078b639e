"""Numbers in query strings (more digits than Python converts, 4,300, are a 400, not a 500), and
JSON bodies whose strings cannot be encoded."""

from __future__ import annotations

import pytest

from dockerlink.errors import BadRequest
from dockerlink.hosting import PORTS_LABEL, host_port_root
from dockerlink.requests import parse_events_limit, parse_json_object, parse_stop_grace

LONG = "0" * 4300 + "5"


def test_a_stop_grace_or_an_events_limit_of_any_length_is_read_or_refused() -> None:
    assert parse_stop_grace("300", 10) == 300
    assert parse_stop_grace(None, 10) == 10
    assert parse_stop_grace("0300", 10) == 300  # leading zeros, as before
    assert parse_events_limit("1000") == 1000
    assert parse_events_limit("01000") == 1000
    assert parse_stop_grace(LONG, 10) == 5  # 4,301 digits, most of them leading zeros
    for bad in ("9" * 5000, "301", "-1", "1.5", "٣"):
        with pytest.raises(BadRequest, match="t must be a whole number"):
            parse_stop_grace(bad, 10)
    assert parse_events_limit(LONG) == 5
    for bad in ("9" * 5000, "1001", "0"):
        with pytest.raises(BadRequest, match="limit must be a whole number"):
            parse_events_limit(bad)


def test_a_ports_label_that_is_no_port_is_none() -> None:
    """Anyone with engine access can label a container; a label of any length must not
    break the listing."""
    assert host_port_root({PORTS_LABEL: "20000"}) == 20000
    assert host_port_root({PORTS_LABEL: LONG}) is None
    assert host_port_root({PORTS_LABEL: "²"}) is None
    assert host_port_root({}) is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"commands": ["echo \\ud800"]}',  # half of a character: nothing can encode it
        b'{"name": "web", "\\udfff": 1}',
        b'{"commands": [["x"], {"y": "\\udc00"}]}',
    ],
)
def test_a_lone_surrogate_escape_is_a_400(body: bytes) -> None:
    with pytest.raises(BadRequest, match="lone surrogate"):
        parse_json_object(body)
    assert parse_json_object(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}  # a whole pair


def test_deep_nesting_that_json_takes_is_walked_without_recursion() -> None:
    """json.loads takes about 1,000 levels, the interpreter's stack about 350 Python calls."""
    deep = b'{"commands": ' + b"[" * 900 + b"]" * 900 + b"}"
    assert isinstance(parse_json_object(deep), dict)
