"""Fuzzing the one MIDI extraction path: every input gives a melody or a typed ``MidiError``.

Three kinds of check, each bounded to a few seconds:
- mutated real files (the seed corpus in ``midi_corpus``) and raw garbage never let anything but
  ``MidiError`` out of the unguarded reader, and every melody that comes back is well formed;
- on valid files the reader agrees with a reference built on mido (the reader it replaced);
- hand-made hostile files (huge counts, lying lengths, RIFF wrappers, odd paths) get the right code.
The long run with figures is ``benchmarks/fuzz_midi.py``.
"""

from __future__ import annotations

import io
import os
import random
import struct
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import mido
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from midi_corpus import MUTATORS, many_tracks, rmid, seed_corpus, smf, vlq

import composer.extract as extract
from composer.errors import MidiError
from composer.extract import (
    MAX_FILE_BYTES,
    MAX_NOTES,
    MAX_STEPS,
    Note,
    Voice,
    melody_from_midi,
    melody_from_voices,
    skyline,
    supported_time_signature,
)
from composer.melody import HOLD, REST, STEPS_PER_QUARTER, Melody

CODES = {"not_midi", "corrupt", "too_large", "too_long", "no_notes", "drums_only", "unreadable"}
#: The mutator that makes files of hundreds of thousands of notes takes seconds; it has its own tests.
LIGHT_MUTATORS = sorted(set(MUTATORS) - {"many_notes"})
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SEEDS = seed_corpus()


def _check(data: bytes) -> Melody | MidiError:
    """Run the unguarded reader; only a well-formed melody or a ``MidiError`` may come out."""
    try:
        melody = extract._melody_from_bytes(data)
    except MidiError as exc:
        assert exc.code in CODES, exc.code
        return exc
    assert 0 < melody.n_steps <= MAX_STEPS
    assert melody.n_steps % melody.steps_per_bar == 0
    assert melody.pitches() and all(0 <= p <= 127 for p in melody.pitches())
    assert melody.events[0] != HOLD
    assert 20.0 <= melody.tempo_bpm <= 400.0
    return melody


def test_seed_corpus_is_real_and_readable() -> None:
    assert len(SEEDS) >= 10
    assert sum(isinstance(_check(data), Melody) for data in SEEDS.values()) >= 10


@FUZZ
@given(seed=st.sampled_from(sorted(SEEDS)), names=st.lists(st.sampled_from(LIGHT_MUTATORS), min_size=1,
       max_size=3), rng_seed=st.integers(0, 2**32 - 1))
def test_mutated_seeds_give_a_melody_or_a_typed_error(seed: str, names: list[str], rng_seed: int) -> None:
    rng = random.Random(rng_seed)
    data = SEEDS[seed]
    for name in names:
        data = MUTATORS[name](data, rng)
    _check(data)


@FUZZ
@given(head=st.sampled_from([b"", b"MThd", b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x00\x60MTrk", b"RIFF"]),
       body=st.binary(max_size=2000))
def test_garbage_behind_any_header_gives_a_typed_error(head: bytes, body: bytes) -> None:
    _check(head + body)


# --- agreement with mido on valid files ----------------------------------------------------------

def _mido_reference(data: bytes) -> Melody:
    """The melody as the original mido-based reader found it: the oracle for valid files."""
    mid = mido.MidiFile(file=io.BytesIO(data), clip=True)
    tpq = mid.ticks_per_beat
    tempo = time_signature = second = None
    first_tick = 0
    open_notes: dict[tuple[int, int, int], deque[int]] = {}
    notes: dict[tuple[int, int], list[Note]] = {}
    programs: dict[tuple[int, int], int] = {}
    max_ticks = MAX_STEPS * tpq // STEPS_PER_QUARTER
    for t_index, track in enumerate(mid.tracks):
        tick = 0
        for msg in track:
            tick += msg.time
            if tick > max_ticks:
                if msg.type in ("note_on", "note_off"):
                    raise MidiError("too long", "too_long")
                break
            if msg.type == "set_tempo" and tempo is None and msg.tempo > 0:
                tempo = mido.tempo2bpm(msg.tempo)
            elif msg.type == "time_signature" and time_signature is None:
                time_signature, first_tick = (msg.numerator, msg.denominator), tick
            elif msg.type == "time_signature" and second is None and tick > first_tick == 0:
                second = (tick, (msg.numerator, msg.denominator))
            elif msg.type == "program_change":
                programs.setdefault((t_index, msg.channel), msg.program)
            elif msg.type == "note_on" and msg.velocity > 0:
                open_notes.setdefault((t_index, msg.channel, msg.note), deque()).append(tick)
            elif msg.type in ("note_off", "note_on"):
                starts = open_notes.get((t_index, msg.channel, msg.note))
                if starts and tick > (start := starts.popleft()):
                    note = Note(msg.note, start / tpq, tick / tpq)
                    notes.setdefault((t_index, msg.channel), []).append(note)
    voices = [Voice(sorted(ns, key=lambda n: n.start), channel == 9, programs.get((t, channel), 0))
              for (t, channel), ns in notes.items()]
    bpm = tempo if tempo is not None and 20.0 <= tempo <= 400.0 else 120.0
    pickup = 0
    if second is not None:  # an anacrusis written as a short first bar
        steps = round(second[0] * STEPS_PER_QUARTER / tpq)
        if supported_time_signature(second[1]) and 0 < steps < Melody((), second[1]).steps_per_bar:
            time_signature, pickup = second[1], steps
    return melody_from_voices(voices, bpm, time_signature or (4, 4), pickup)


def _outcome(read: Callable[[bytes], Melody], data: bytes) -> Melody | str:
    try:
        return read(data)
    except MidiError as exc:
        return exc.code


def test_seed_corpus_agrees_with_mido() -> None:
    for name, data in SEEDS.items():
        assert _outcome(melody_from_midi, data) == _outcome(_mido_reference, data), name


_CHANNEL = st.tuples(st.sampled_from([0x80, 0x90, 0x90, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0]),
                     st.sampled_from([0, 1, 9]), st.integers(58, 64), st.integers(0, 127))
_META = st.one_of(
    st.tuples(st.just(0x51), st.integers(0, 2**24 - 1).map(lambda t: t.to_bytes(3, "big"))),
    st.tuples(st.just(0x58), st.tuples(st.integers(0, 20), st.integers(0, 6))
              .map(lambda ts: bytes([ts[0], ts[1], 24, 8]))),
    st.tuples(st.just(0x01), st.binary(max_size=20)),
)
_EVENT = st.tuples(st.one_of(st.integers(0, 200), st.integers(0, 2**22)),
                   st.one_of(_CHANNEL, _META, st.binary(max_size=10)))


def _track_bytes(events: list[tuple[int, object]], running: bool) -> bytes:
    """Encode events (channel tuples, metas, sysex payloads), with or without running status."""
    body = bytearray()
    last = None
    for delta, event in events:
        body += vlq(delta)
        if isinstance(event, bytes):
            body += b"\xf0" + vlq(len(event) + 1) + event + b"\xf7"
            last = None  # mido takes a sysex for running status; the standard cancels it
        elif len(event) == 2:
            kind, payload = event
            body += bytes([0xFF, kind]) + vlq(len(payload)) + payload
        else:
            kind, channel, first, second = event
            status = kind | channel
            data = bytes([first]) if kind in (0xC0, 0xD0) else bytes([first, second])
            body += (data if running and status == last else bytes([status]) + data)
            last = status
    return bytes(body + b"\x00\xff\x2f\x00")


@FUZZ
@given(tracks=st.lists(st.lists(_EVENT, max_size=60), min_size=1, max_size=4), running=st.booleans(),
       tpq=st.sampled_from([1, 24, 96, 480, 960, 0x7FFF]), fmt=st.sampled_from([0, 1]))
def test_valid_files_read_as_mido_reads_them(tracks: list, running: bool, tpq: int, fmt: int) -> None:
    data = smf([_track_bytes(t, running) for t in tracks], tpq=tpq, fmt=fmt)
    assert _outcome(melody_from_midi, data) == _outcome(_mido_reference, data)


def _reference_skyline(notes: list[Note]) -> list[int]:
    """The first, span-by-span skyline: simple, but its work grows with note lengths."""
    spans = [(n.pitch, s := round(n.start * 4), max(s + 1, round(n.end * 4))) for n in notes]
    n_steps = max(e for _, _, e in spans)
    top = np.full(n_steps, -1)
    for pitch, start, end in spans:
        np.maximum(top[start:end], pitch, out=top[start:end])
    onset = np.zeros(n_steps, dtype=bool)
    for pitch, start, _ in spans:
        onset[start] |= top[start] == pitch
    events, previous = [], -1
    for t in range(n_steps):
        p = int(top[t])
        events.append((REST if previous >= 0 or t == 0 else HOLD) if p < 0
                      else p if onset[t] or p != previous else HOLD)
        previous = p
    return events


@FUZZ
@given(st.lists(st.tuples(st.integers(40, 50), st.integers(0, 80), st.integers(0, 40)), min_size=1,
                max_size=40))
def test_skyline_matches_the_span_by_span_reference(raw: list[tuple[int, int, int]]) -> None:
    notes = [Note(p, s / 8, (s + d) / 8) for p, s, d in raw]
    assert skyline(notes) == _reference_skyline(notes)


# --- hand-made hostile files -----------------------------------------------------------------

NOTE = b"\x00\x90\x3c\x40\x60\x80\x3c\x00"


def _code(data: bytes) -> str:
    result = _check(data)
    return result.code if isinstance(result, MidiError) else "melody"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (smf([NOTE]), "melody"),
        (smf([NOTE])[:-3], "corrupt"),  # truncated inside the last event
        (smf([NOTE], ntracks=2), "corrupt"),  # a track promised but missing
        (smf([b"\x00\x90\x3c\x40" + vlq(0x0FFFFFFF) + b"\x80\x3c\x00"]), "too_long"),
        (smf([b"\x00\x90\x3c\x40\xff\xff\xff\xff\x7f\x80\x3c\x00"]), "corrupt"),  # 5-byte delta time
        (smf([b"\x00\xff\x51\x03\x00\x00\x00" + NOTE]), "melody"),  # zero tempo: default
        (smf([b"\x00\xff\x51\x00" + NOTE]), "melody"),  # tempo with no data
        (smf([b"\x00\x3c\x40" + NOTE]), "corrupt"),  # running status with nothing to run
        (smf([b"\x00\xf4" + NOTE]), "corrupt"),  # undefined status byte
        (smf([b"\x00\xff\x01\x8f\xff\xff\x7f"]), "corrupt"),  # meta longer than its track
        (smf([NOTE], fmt=2), "corrupt"),
        (smf([NOTE], tpq=0), "corrupt"),
        (smf([NOTE], tpq=0xE728), "corrupt"),  # SMPTE time division
        (smf([NOTE] * 257), "too_long"),
        (smf([], ntracks=65535), "too_long"),
        (smf([b"\x00\x99\x24\x40\x10\x89\x24\x00"]), "drums_only"),
        (smf([b"\x00\xff\x2f\x00"]), "no_notes"),
        (b"XYZW" + smf([NOTE])[4:], "not_midi"),
        (smf([], ntracks=1) + b"garbage that is no track at all", "corrupt"),
    ],
)
def test_hostile_files_get_their_code(data: bytes, code: str) -> None:
    assert _code(data) == code


def test_unknown_chunks_and_bytes_after_the_tracks_are_skipped() -> None:
    data = smf([NOTE])
    alien = b"XFIH" + struct.pack(">I", 5) + b"hello"
    with_alien = data[:14] + alien + data[14:] + b"trailing junk"
    assert melody_from_midi(with_alien) == melody_from_midi(data)


def test_riff_midi_is_unwrapped() -> None:
    plain = SEEDS["bach_bwv66_6.mid"]
    payload = b"data" + struct.pack("<I", len(plain)) + plain
    wrapped = b"RIFF" + struct.pack("<I", 4 + len(payload)) + b"RMID" + payload
    assert melody_from_midi(wrapped) == melody_from_midi(plain)
    assert _code(b"RIFF" + struct.pack("<I", 4) + b"WAVE") == "not_midi"
    assert _code(b"RIFF" + struct.pack("<I", 12) + b"RMIDLIST\x00\x00\x00\x00") == "not_midi"
    for seed in range(30):
        _check(rmid(plain, random.Random(seed)))


def test_many_tracks_and_notes_are_refused_quickly() -> None:
    for seed in range(5):
        assert _code(many_tracks(b"", random.Random(seed))) == "too_long"
    n = MAX_NOTES + 1
    data = smf([b"\x00\x90" + b"\x3c\x40\x00" * n])
    started = time.process_time()
    assert _code(data) == "too_long"
    assert time.process_time() - started < 5


def test_long_overlapping_notes_cost_no_more_than_short_ones() -> None:
    """60,000 notes that each last 12,000 steps: the skyline's work must not grow with length."""
    ons = b"".join(bytes([0, 24 + i % 96, 64]) for i in range(60_000))
    offs = b"".join(bytes([0, 24 + i % 96, 0]) for i in range(60_000))
    data = smf([b"\x00\x90" + ons[1:] + vlq(12_000 * 24) + b"\x80" + offs[1:]])
    started = time.process_time()
    assert _code(data) == "melody"
    assert time.process_time() - started < 5


def test_an_unexpected_failure_inside_still_becomes_a_midi_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for error in (RecursionError, MemoryError, IndexError):
        def broken(data: bytes, error: type[Exception] = error) -> None:
            raise error("boom")

        monkeypatch.setattr(extract, "_read_smf", broken)
        with pytest.raises(MidiError) as caught:
            melody_from_midi(smf([NOTE]))
        assert caught.value.code == "corrupt"


# --- paths: only ever the caller's own, never a name from the bytes -------------------------------

def test_bytes_are_never_taken_for_a_path(tmp_path: Path) -> None:
    real = tmp_path / "real.mid"
    real.write_bytes(smf([NOTE]))
    for data in (str(real).encode(), bytearray(str(real).encode()), memoryview(str(real).encode())):
        assert _code(bytes(data)) == "not_midi"
        with pytest.raises(MidiError, match="no MThd"):
            melody_from_midi(data)
    assert melody_from_midi(real) == melody_from_midi(str(real)) == melody_from_midi(real.read_bytes())


def test_paths_that_are_not_regular_files_are_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.mid"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path, tmp_path / "missing.mid", Path("/dev/zero")):
        with pytest.raises(MidiError) as caught:
            melody_from_midi(path)
        assert caught.value.code == "unreadable"
    big = tmp_path / "big.mid"
    big.write_bytes(b"MThd" + b"\x00" * MAX_FILE_BYTES)
    with pytest.raises(MidiError) as caught:
        melody_from_midi(big)
    assert caught.value.code == "too_large"


def test_other_types_are_a_programming_error() -> None:
    with pytest.raises(TypeError):
        melody_from_midi(10**9)  # type: ignore[arg-type]


# Memory (issue 10, fault 6): reading any file up to the size limit stays under a stated bound.

#: Peak memory (traced by tracemalloc: every Python and numpy allocation) of reading one file.
MEMORY_BOUND = 16 * 1024 * 1024


def _peak_of_reading(data: bytes) -> tuple[int, Melody | MidiError]:
    import tracemalloc

    tracemalloc.start()
    try:
        outcome = _check(data)
        return tracemalloc.get_traced_memory()[1], outcome
    finally:
        tracemalloc.stop()


def _distinct_open_notes(n: int = MAX_NOTES) -> bytes:
    """``n`` note-ons that never end, each on its own (track, channel, pitch): 98 tracks of 2,048. The
    reader kept a queue for each of them: 600 KB took 200 MB."""
    tracks = []
    for first in range(0, n, 2048):
        count = min(2048, n - first)
        tracks.append(b"".join(bytes([0, 0x90 | (i // 128), i % 128, 64]) for i in range(count)))
    return smf(tracks)


def _closed_notes(n: int = MAX_NOTES - 1) -> bytes:
    """``n`` short notes one after another in one track: the most notes a file may keep."""
    body = b"".join(bytes([1, 40 + i % 60, 0, 0, 40 + (i + 1) % 60, 64]) for i in range(n - 1))
    return smf([b"\x00\x90\x28\x40" + body + b"\x01\x28\x00"])


def _stacked_notes(n: int = MAX_NOTES - 1) -> bytes:
    """``n`` note-ons of one pitch, then ``n`` note-offs: one queue of ``n`` sounding notes."""
    return smf([b"\x00\x90" + b"\x3c\x40\x00" * n + b"\x3c\x00\x00" * (n - 1) + b"\x3c\x00"])


def _spread_voices(tracks: int = 100, per_track: int = (MAX_NOTES - 1) // 100) -> bytes:
    """Notes over 16 channels in each of 100 tracks: 1,600 voices to choose from."""
    body = b"".join(bytes([1, 0x90 | (i % 16), 40 + i % 50, 0, 0, 0x90 | (i % 16), 40 + (i + 1) % 50, 64])
                    for i in range(per_track))
    return smf([b"\x00\x90\x28\x40" + body] * tracks)


@pytest.mark.parametrize("make", [
    _distinct_open_notes, _closed_notes,
    # Smaller (tracing costs about 8 s a file of 200,000 notes): these kept little even before.
    lambda: _stacked_notes(50_000), lambda: _spread_voices(25),
], ids=["distinct_open_notes", "closed_notes", "stacked_notes", "spread_voices"])
def test_the_worst_files_are_read_in_bounded_memory(make: Callable[[], bytes]) -> None:
    """Before: 167 MiB for the 782 KB file of distinct open notes, 29 MiB for 200,000 closed notes (one
    object each); now 1.6 and 11 MiB."""
    data = make()
    assert len(data) <= MAX_FILE_BYTES
    peak, _ = _peak_of_reading(data)
    assert peak < MEMORY_BOUND, f"{peak / 2**20:.1f} MiB for {len(data) / 1024:.0f} KB"


@given(st.sampled_from(sorted(SEEDS)), st.lists(st.sampled_from(sorted(MUTATORS)), min_size=1, max_size=3),
       st.integers(0, 2**32 - 1))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_files_are_read_in_bounded_memory(seed: str, names: list[str], rng_seed: int) -> None:
    rng = random.Random(rng_seed)
    data = SEEDS[seed]
    for name in names:
        data = MUTATORS[name](data, rng)
    if len(data) <= MAX_FILE_BYTES:
        peak, _ = _peak_of_reading(data)
        assert peak < MEMORY_BOUND, f"{peak / 2**20:.1f} MiB after {names}"
