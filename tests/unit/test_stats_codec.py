"""The line format: keyframes and compact deltas decode back to exactly what was written."""

from __future__ import annotations

import random

import orjson
import pytest

from dockerlink.stats.codec import LineEncoder, decode_chunk, decode_lines
from dockerlink.stats.resources import net_delta
from dockerlink.stats.series import Sample

GIB = 1 << 30


def sample(t: int, **fields: int) -> Sample:
    values = {
        "mem_used_kib": 1000,
        "mem_limit_bytes": 2 * GIB,
        "cpu_centi": 500,
        "cpu_limit_centi": 15000,
        "up_kib": 0,
        "down_kib": 0,
        "delta_up_kib": 0,
        "delta_down_kib": 0,
    }
    values.update(fields)
    return Sample(t=t, **values)


def encode_all(samples: list[Sample], keyframe_every: int = 120) -> list[bytes]:
    encoder = LineEncoder(keyframe_every)
    return [encoder.encode(s) for s in samples]


def history(rng: random.Random, n: int) -> list[Sample]:
    """A plausible history: noise, limit changes, stops, restarts with and without a stop seen."""
    samples: list[Sample] = []
    t, mem, cpu, up, down = 1_764_200_000, 50_000, 1000, 0, 0
    limit, cpu_limit, running = 2 * GIB, 15000, True
    for _ in range(n):
        t += rng.choice([15, 15, 15, 14, 16, 300])
        event = rng.random()
        reset = False
        if event < 0.02:
            running = not running
        elif event < 0.04:
            limit = rng.choice([GIB, 2 * GIB, 107374182])
        elif event < 0.05:
            cpu_limit = rng.choice([0, 5000, 15000, 3333])
        elif event < 0.07 and running:
            reset = True  # restarted between two samples
        if not running:
            samples.append(
                sample(
                    t, mem_limit_bytes=limit, cpu_limit_centi=cpu_limit, mem_used_kib=0, cpu_centi=0
                )
            )
            up = down = 0
            continue
        new_up = (0 if reset else up) + rng.choice([0, 0, 1, 7, 1234, 99999])
        new_down = (0 if reset else down) + rng.choice([0, 3, 50, 100000])
        mem = max(0, mem + rng.randint(-5000, 5000))
        cpu = max(0, min(20000, cpu + rng.randint(-800, 800)))
        samples.append(
            Sample(
                t=t,
                mem_used_kib=mem,
                mem_limit_bytes=limit,
                cpu_centi=cpu,
                cpu_limit_centi=cpu_limit,
                up_kib=new_up,
                down_kib=new_down,
                delta_up_kib=net_delta(up, new_up, reset=reset),
                delta_down_kib=net_delta(down, new_down, reset=reset),
            )
        )
        up, down = new_up, new_down
    return samples


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_of_a_random_history(seed: int) -> None:
    samples = history(random.Random(seed), 600)
    lines = encode_all(samples, keyframe_every=50)
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    assert list(decode_lines(b"".join(lines).split(b"\n"))) == samples


def reference_line(previous: Sample | None, sample: Sample, since_keyframe: int) -> bytes:
    """The line format spelled out plainly (how the encoder wrote it before it was made
    faster): a keyframe object, or the five differences with trailing zeros dropped."""
    holds = previous is not None and (
        sample.t > previous.t
        and sample.mem_limit_bytes == previous.mem_limit_bytes
        and sample.cpu_limit_centi == previous.cpu_limit_centi
        and sample.delta_up_kib == net_delta(previous.up_kib, sample.up_kib)
        and sample.delta_down_kib == net_delta(previous.down_kib, sample.down_kib)
    )
    if previous is None or since_keyframe >= 50 or not holds:
        keys = ("t", "m", "ml", "c", "cl", "u", "d", "du", "dd")
        return orjson.dumps(dict(zip(keys, sample, strict=True))) + b"\n"
    deltas = [
        sample.t - previous.t,
        sample.mem_used_kib - previous.mem_used_kib,
        sample.cpu_centi - previous.cpu_centi,
        sample.up_kib - previous.up_kib,
        sample.down_kib - previous.down_kib,
    ]
    while len(deltas) > 1 and deltas[-1] == 0:
        deltas.pop()
    return ("[" + ",".join(map(str, deltas)) + "]\n").encode()


@pytest.mark.parametrize("seed", range(10))
def test_lines_are_byte_for_byte_the_plain_format(seed: int) -> None:
    rng = random.Random(seed)
    samples = history(rng, 600)
    # Every combination of zero and non-zero differences, for the trailing zeros.
    for n in range(32):
        last = samples[-1]
        samples.append(
            last._replace(
                t=last.t + 15,
                mem_used_kib=last.mem_used_kib + (n & 1) * rng.choice([-3, 5]),
                cpu_centi=last.cpu_centi + (n >> 1 & 1) * rng.choice([-1, 2]),
                up_kib=last.up_kib + (n >> 2 & 1) * 7,
                down_kib=last.down_kib + (n >> 3 & 1) * 9,
                delta_up_kib=(n >> 2 & 1) * 7,
                delta_down_kib=(n >> 3 & 1) * 9,
            )
        )
    expected: list[bytes] = []
    previous, since_keyframe = None, 0
    for s in samples:
        line = reference_line(previous, s, since_keyframe)
        since_keyframe = 0 if line.startswith(b"{") else since_keyframe + 1
        expected.append(line)
        previous = s
    assert encode_all(samples, keyframe_every=50) == expected
    assert {line[:1] for line in expected} == {b"{", b"["}


def test_first_line_is_a_keyframe_then_deltas_with_trailing_zeros_dropped() -> None:
    samples = [
        sample(1000, up_kib=10, down_kib=20, delta_up_kib=10, delta_down_kib=20),
        sample(1015, up_kib=10, down_kib=20),
        sample(1030, mem_used_kib=990, cpu_centi=620, up_kib=12, down_kib=20, delta_up_kib=2),
    ]
    lines = encode_all(samples)
    assert orjson.loads(lines[0]) == {
        "t": 1000,
        "m": 1000,
        "ml": 2 * GIB,
        "c": 500,
        "cl": 15000,
        "u": 10,
        "d": 20,
        "du": 10,
        "dd": 20,
    }
    assert lines[1] == b"[15]\n"
    assert lines[2] == b"[15,-10,120,2]\n"


def test_a_limit_change_is_a_keyframe() -> None:
    samples = [sample(1000), sample(1015, mem_limit_bytes=GIB), sample(1030, mem_limit_bytes=GIB)]
    lines = encode_all(samples)
    assert [line[:1] for line in lines] == [b"{", b"{", b"["]


def test_a_restart_that_left_counters_higher_is_a_keyframe() -> None:
    # Before: up 100. Restarted, and already sent 150 since: the delta is 150, not 50.
    samples = [
        sample(1000, up_kib=100, delta_up_kib=100),
        sample(1015, up_kib=150, delta_up_kib=150),
    ]
    lines = encode_all(samples)
    assert lines[1].startswith(b"{")
    assert list(decode_lines(b"".join(lines).split(b"\n"))) == samples


def test_a_counter_that_went_down_is_a_plain_delta() -> None:
    samples = [sample(1000, up_kib=100, delta_up_kib=100), sample(1015, up_kib=30, delta_up_kib=30)]
    lines = encode_all(samples)
    assert lines[1] == b"[15,0,0,-70]\n"
    assert list(decode_lines(b"".join(lines).split(b"\n")))[1].delta_up_kib == 30


def test_keyframes_come_back_periodically() -> None:
    lines = encode_all([sample(1000 + 15 * i) for i in range(25)], keyframe_every=10)
    keyframes = [i for i, line in enumerate(lines) if line.startswith(b"{")]
    assert keyframes == [0, 11, 22]


def test_a_torn_last_line_is_skipped() -> None:
    samples = [sample(1000 + 15 * i, cpu_centi=i * 7) for i in range(5)]
    data = b"".join(encode_all(samples))
    torn = data[:-3]  # the last line lost its end
    assert list(decode_lines(torn.split(b"\n"))) == samples[:-1]


def test_a_bad_line_loses_only_the_samples_up_to_the_next_keyframe() -> None:
    samples = [sample(1000 + 15 * i, cpu_centi=i) for i in range(30)]
    lines = encode_all(samples, keyframe_every=9)  # keyframes at 0, 10, 20
    lines[3] = b"\x00\x00\x00\x00\n"
    decoded = list(decode_lines(b"".join(lines).split(b"\n")))
    assert decoded == samples[:3] + samples[10:]


@pytest.mark.parametrize(
    "line",
    [
        b"[0]",  # time must move forward
        b"[-15]",
        b"[15,-999999]",  # memory below zero
        b"[15,true]",
        b"[15,1.5]",
        b"[]",
        b"[15,0,0,0,0,0]",
        b'"text"',
        b'{"t":1}',  # a keyframe missing fields
    ],
)
def test_nonsense_lines_are_skipped(line: bytes) -> None:
    first = sample(1000)
    data = encode_all([first])[0] + line + b"\n[15]\n"
    decoded = list(decode_lines(data.split(b"\n")))
    assert decoded == [first]  # the bad line, and the delta after it, are dropped


#: Lines a damaged file may hold, mixed into a valid one by the test below.
DAMAGE = [
    b"",
    b"   ",
    b"[0]",
    b"[-15]",
    b"[15,-999999]",
    b"[15,true]",
    b"[15,1.5]",
    b"[]",
    b"[15,0,0,0,0,0]",
    b'"text"',
    b"42",
    b"1,2",
    b"[15],[15]",
    b'{"t":1}',
    b'{"t":1,"m":2,"ml":3,"c":4,"cl":5,"u":6,"d":7,"du":8,"dd":-9}',
    b'{"t":1',
    b"[15,",
    b'["a',
    b'b"]',
    b"null",
]


@pytest.mark.parametrize("seed", range(30))
def test_decode_chunk_gives_what_decode_lines_gives(seed: int) -> None:
    """The one-parse decoder, on whole files and on files with damaged lines here and there
    (torn, empty, nonsense): the same samples as decoding line by line."""
    rng = random.Random(seed)
    lines = encode_all(history(rng, 300), keyframe_every=rng.choice([5, 50, 120]))
    if seed % 3:
        for _ in range(rng.randint(1, 4)):
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(DAMAGE) + b"\n")
    if seed % 5 == 0:
        lines[-1] = lines[-1][: rng.randrange(1, len(lines[-1]))]  # a torn last line
    data = b"".join(lines)
    expected = [tuple(s) for s in decode_lines(data.split(b"\n"))]
    assert decode_chunk(data) == expected


# -- runs of repeated samples -----------------------------------------------------------------


def repeated(base: Sample, times: list[int]) -> list[Sample]:
    return [base._replace(t=t, delta_up_kib=0, delta_down_kib=0) for t in times]


def test_a_run_is_one_line_that_decodes_to_each_sample() -> None:
    encoder = LineEncoder()
    first = sample(100, up_kib=7, delta_up_kib=7)
    times = [115, 130, 146, 160]
    lines = [encoder.encode(first), encoder.encode_run(first, times)]
    after = sample(175, up_kib=9, delta_up_kib=2)
    lines.append(encoder.encode(after))
    assert lines[1] == b'["=",15,15,16,14]\n'
    expected = [first, *repeated(first, times), after]
    assert list(decode_lines(b"".join(lines).split(b"\n"))) == expected
    assert decode_chunk(b"".join(lines)) == [tuple(s) for s in expected]


def test_a_run_that_cannot_follow_its_line_starts_with_its_own() -> None:
    """No line before (a new file), other figures, or a keyframe due: the first sample of the
    run gets its own line, the others one repeat line."""
    base = sample(100)
    for encoder, before in (
        (LineEncoder(), []),
        (LineEncoder(), [sample(90, mem_used_kib=5)]),
        (LineEncoder(keyframe_every=1), [sample(80), sample(90)]),
    ):
        lines = [encoder.encode(s) for s in before]
        lines.append(encoder.encode_run(base, [100, 115, 130]))
        expected = [*before, *repeated(base, [100, 115, 130])]
        assert list(decode_lines(b"".join(lines).split(b"\n"))) == expected
        assert lines[-1].count(b"\n") == 2


def test_an_open_run_stands_for_the_ticks_after_its_sample() -> None:
    """Cut by a crash: the sample again at each tick time after it, up to the next sample the
    file holds (a keyframe the next process wrote) or to the end of the ticks."""
    first = sample(100)
    encoder = LineEncoder()
    head = encoder.encode(first) + b'["="]\n'
    ticks = [90, 100, 115, 130, 145, 160]
    assert decode_chunk(head, ticks) == [tuple(s) for s in [first, *repeated(first, ticks[2:])]]
    later = LineEncoder().encode(sample(145, mem_used_kib=3))
    assert decode_chunk(head + later, ticks) == [
        tuple(s) for s in [first, *repeated(first, [115, 130]), sample(145, mem_used_kib=3)]
    ]
    # A damaged line after it: still filled, up to the next sample read.
    assert decode_chunk(head + b'["=",15,1\n' + later, ticks) == decode_chunk(head + later, ticks)
    assert list(decode_lines((head + later).split(b"\n"), ticks)) == [
        Sample(*row) for row in decode_chunk(head + later, ticks)
    ]


def test_a_closed_run_is_read_from_its_line_not_from_the_ticks() -> None:
    first = sample(100)
    encoder = LineEncoder()
    data = encoder.encode(first) + b'["="]\n' + encoder.encode_run(first, [115, 131])
    assert decode_chunk(data, [115, 130, 131, 145]) == [
        tuple(s) for s in [first, *repeated(first, [115, 131])]
    ]


@pytest.mark.parametrize(
    "line",
    [b'["=",0]', b'["=",-15]', b'["=",15,true]', b'["=",15.0]', b'["=","15"]', b'["=",[15]]'],
)
def test_a_repeat_line_that_makes_no_sense_is_damage(line: bytes) -> None:
    """It yields nothing, and neither do the deltas after it until the next keyframe."""
    encoder = LineEncoder()
    first = sample(100)
    data = encoder.encode(first) + line + b"\n" + encoder.encode(sample(130, cpu_centi=1))
    assert decode_chunk(data) == [tuple(first)]
    assert list(decode_lines(data.split(b"\n"))) == [first]


def test_a_repeat_line_without_a_sample_before_yields_nothing() -> None:
    assert decode_chunk(b'["=",15,15]\n["="]\n', [1, 2, 3]) == []


@pytest.mark.parametrize("seed", range(20))
def test_histories_with_runs_decode_to_what_was_encoded(seed: int) -> None:
    """Random histories where runs of repeated samples of random lengths are encoded as runs,
    with keyframes due at random: every sample comes back, whichever way it was written."""
    rng = random.Random(seed)
    encoder = LineEncoder(rng.choice([3, 50, 120]))
    expected: list[Sample] = []
    lines: list[bytes] = []
    for s in history(rng, 200):
        if expected and expected[-1].t >= s.t:
            continue
        lines.append(encoder.encode(s))
        expected.append(s)
        if rng.random() < 0.3:
            times = [s.t + 15 * (i + 1) + rng.randint(0, 1) for i in range(rng.randint(1, 30))]
            lines.append(encoder.encode_run(s, times))
            expected.extend(repeated(s, times))
    data = b"".join(lines)
    assert decode_chunk(data) == [tuple(s) for s in expected]
    assert list(decode_lines(data.split(b"\n"))) == expected
