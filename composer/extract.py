"""The one path from MIDI (or any note list) to a monophonic ``Melody``.

Pick the melodic track (never drums; prefer many notes, high register, little overlap), take
the top line where notes overlap, quantise to the step grid, keep tempo and time signature.

MIDI files come from strangers, so the reader is a small Standard MIDI File parser of its own
rather than mido's: it walks the bytes once without building message objects, so time and memory
are linear in the (bounded) file size, and every malformed input ends in a ``MidiError``. Notes are
kept in flat arrays (17 bytes a note), not objects, and notes still sounding are tracked for the
current track only (a note never ends in another track), so a file of the largest size holds a few
tens of MB at most, whatever it contains.
"""

from __future__ import annotations

import math
import os
import stat
import struct
from array import array
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from composer.errors import MidiError
from composer.melody import HOLD, REST, STEPS_PER_QUARTER, Melody, canonical

#: Files larger than this are refused before parsing.
MAX_FILE_BYTES = 2 * 1024 * 1024
#: Melodies longer than this many steps (1,000 bars of 4/4) are refused.
MAX_STEPS = 16_000
MAX_NOTES = 200_000
MAX_TRACKS = 256
#: Data bytes of the system messages mido also accepts inside a track (they carry nothing we use).
_SYSTEM_DATA_BYTES = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0, 0xF8: 0, 0xFA: 0, 0xFB: 0, 0xFC: 0, 0xFE: 0}


@dataclass(frozen=True, slots=True)
class Note:
    """A note in quarter-note units."""

    pitch: int
    start: float
    end: float


@dataclass(frozen=True)
class Voice:
    """One track or part: its notes, whether it is percussion, and its General MIDI program."""

    notes: list[Note]
    is_drum: bool = False
    program: int = 0


def melody_from_midi(source: bytes | bytearray | memoryview | str | Path) -> Melody:
    """Read a MIDI file (bytes, or a path on this machine) and return its melody, or raise ``MidiError``.

    Bytes are never taken for a file name: user uploads go in as bytes.
    """
    data = _read_source(source)
    try:
        return _melody_from_bytes(data)
    except MidiError:
        raise
    except Exception as exc:  # last line of defence: the fuzz tests run _melody_from_bytes unguarded
        raise MidiError(f"unreadable MIDI file ({type(exc).__name__})", "corrupt") from exc


def _melody_from_bytes(data: bytes) -> Melody:
    """The melody of a Standard MIDI File (or RIFF RMID) held in memory."""
    if len(data) > MAX_FILE_BYTES:
        raise MidiError(f"file is {len(data)} bytes, limit {MAX_FILE_BYTES}", "too_large")
    if data.startswith(b"RIFF"):
        data = _unwrap_rmid(data)
    if not data.startswith(b"MThd"):
        raise MidiError("not a MIDI file (no MThd header)", "not_midi")
    voices, tempo, time_signature, pickup = _read_smf(data)
    return _melody(voices, tempo, time_signature, pickup)


def _read_source(source: bytes | bytearray | memoryview | str | Path) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if not isinstance(source, (str, Path)):
        raise TypeError(f"expected bytes or a path, got {type(source).__name__}")
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; only regular files are read.
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise MidiError(f"{source} is not a regular file", "unreadable")
            return file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise MidiError(f"cannot read {source}: {exc.strerror}", "unreadable") from exc


def _unwrap_rmid(data: bytes) -> bytes:
    """The Standard MIDI File inside a RIFF RMID file (its ``data`` chunk)."""
    if len(data) < 12 or data[8:12] != b"RMID":
        raise MidiError("a RIFF file that is not RIFF MIDI", "not_midi")
    end = min(len(data), 8 + struct.unpack_from("<I", data, 4)[0])
    pos = 12
    while pos + 8 <= end:
        size = struct.unpack_from("<I", data, pos + 4)[0]
        if data[pos : pos + 4] == b"data":
            return data[pos + 8 : min(end, pos + 8 + size)]
        pos += 8 + size + (size & 1)
    raise MidiError("RIFF MIDI file without a data chunk", "not_midi")


@dataclass
class _Notes:
    """One voice's notes as the reader collects them: pitch, start and end tick, in flat arrays."""

    pitch: array = field(default_factory=lambda: array("B"))
    start: array = field(default_factory=lambda: array("q"))
    end: array = field(default_factory=lambda: array("q"))


@dataclass
class _Collected:
    """What the reader keeps while it walks the tracks."""

    ticks_per_quarter: int
    max_ticks: int
    tempo_bpm: float | None = None
    time_signature: tuple[int, int] | None = None
    note_ons: int = 0
    # Tick of the first time signature, and (tick, signature) of a second one: a short first bar
    # followed by the real metre is how MIDI files write an anacrusis.
    first_signature_tick: int = 0
    second_signature: tuple[int, tuple[int, int]] | None = None
    notes: dict[tuple[int, int], _Notes] = field(default_factory=dict)
    # The first program change of each (track, channel).
    programs: dict[tuple[int, int], int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Voice:
    """A voice as arrays: pitches, and start and end in quarter notes, sorted by start."""

    pitch: np.ndarray
    start: np.ndarray
    end: np.ndarray
    is_drum: bool = False
    program: int = 0

    @classmethod
    def of(cls, voice: Voice) -> _Voice:
        notes = sorted(voice.notes, key=lambda n: n.start)
        return cls(np.array([n.pitch for n in notes], dtype=np.int64), np.array([n.start for n in notes]),
                   np.array([n.end for n in notes]), voice.is_drum, voice.program)


def _read_smf(data: bytes) -> tuple[list[_Voice], float, tuple[int, int], int]:
    """Voices, tempo, time signature and anacrusis (steps before the first full bar, 0 if none) of a
    Standard MIDI File, in one pass over its bytes."""
    if len(data) < 14:
        raise MidiError("the MIDI header is cut short", "corrupt")
    header_size = struct.unpack_from(">I", data, 4)[0]
    fmt, n_tracks, division = struct.unpack_from(">HHH", data, 8)
    if header_size < 6:
        raise MidiError(f"MIDI header of {header_size} bytes", "corrupt")
    if fmt == 2:  # other unknown formats are read like 0 and 1: the tracks say what they hold
        raise MidiError("MIDI type 2 (sequential songs) is not supported", "corrupt")
    if n_tracks > MAX_TRACKS:
        raise MidiError(f"{n_tracks} tracks, limit {MAX_TRACKS}", "too_long")
    if division == 0 or division & 0x8000:
        raise MidiError("SMPTE or zero time division is not supported", "corrupt")
    got = _Collected(division, MAX_STEPS * division // STEPS_PER_QUARTER)
    pos = 8 + header_size
    track = 0
    while track < n_tracks:
        if pos + 8 > len(data):
            raise MidiError(f"the file ends after {track} of {n_tracks} tracks", "corrupt")
        start = pos + 8
        pos = start + struct.unpack_from(">I", data, pos + 4)[0]
        if pos > len(data):
            raise MidiError("a track runs past the end of the file", "corrupt")
        if data[start - 8 : start - 4] == b"MTrk":  # other chunk kinds are skipped, as the standard says
            _read_track(data, start, pos, track, got)
            track += 1
    voices = []
    for (t, channel), notes in got.notes.items():
        start = np.frombuffer(notes.start, dtype=np.int64)
        order = np.argsort(start, kind="stable")
        voices.append(_Voice(
            np.frombuffer(notes.pitch, dtype=np.uint8)[order].astype(np.int64),
            start[order] / got.ticks_per_quarter,
            np.frombuffer(notes.end, dtype=np.int64)[order] / got.ticks_per_quarter,
            is_drum=channel == 9, program=got.programs.get((t, channel), 0),
        ))
    got.notes.clear()
    bpm = got.tempo_bpm if got.tempo_bpm is not None and 20.0 <= got.tempo_bpm <= 400.0 else 120.0
    pickup = 0
    if got.second_signature is not None:
        tick, signature = got.second_signature
        steps = round(tick * STEPS_PER_QUARTER / division)
        if supported_time_signature(signature) and 0 < steps < Melody((), signature).steps_per_bar:
            got.time_signature, pickup = signature, steps
    return voices, bpm, got.time_signature or (4, 4), pickup


def _read_track(data: bytes, pos: int, end: int, track: int, got: _Collected) -> None:
    """Read the events in ``data[pos:end]`` into ``got``; stop at End of Track or past the step limit."""
    tick = 0
    running = 0  # running status: the last channel status byte
    # Start ticks of this track's sounding notes per (channel << 7 | pitch), oldest first; a note never
    # ends in another track, so what is left at the end of the track is dropped with it.
    sounding: dict[int, deque[int]] = {}
    while pos < end:
        delta = data[pos]
        if delta < 0x80:
            pos += 1
        else:
            delta, pos = _varlen(data, pos, end)
        tick += delta
        if pos >= end:
            raise _cut_short()
        status = data[pos]
        if status & 0x80:
            pos += 1
            if status < 0xF0:
                running = status
        elif running:
            status = running
        else:
            raise MidiError("a data byte where a status byte belongs", "corrupt")
        if status >= 0xF0:
            if status == 0xFF:
                if pos >= end:
                    raise _cut_short()
                kind = data[pos]
                length, pos = _varlen(data, pos + 1, end)
            elif status in (0xF0, 0xF7):
                kind = 0
                length, pos = _varlen(data, pos, end)
            elif status in _SYSTEM_DATA_BYTES:
                kind = 0
                length = _SYSTEM_DATA_BYTES[status]
            else:
                raise MidiError(f"undefined status byte 0x{status:02X}", "corrupt")
            pos += length
            if pos > end:
                raise _cut_short()
            if kind == 0x2F or tick > got.max_ticks:  # End of Track, or past anything we would keep
                return
            if kind == 0x51 and length >= 3 and got.tempo_bpm is None:
                micros = int.from_bytes(data[pos - length : pos - length + 3], "big")
                if micros:
                    got.tempo_bpm = 60_000_000 / micros
            elif kind == 0x58 and length >= 2:
                signature = (data[pos - length], 1 << min(data[pos - length + 1], 6))
                if got.time_signature is None:
                    got.time_signature, got.first_signature_tick = signature, tick
                elif got.second_signature is None and tick > got.first_signature_tick == 0:
                    got.second_signature = (tick, signature)
            continue
        kind = status & 0xF0
        size = 1 if kind in (0xC0, 0xD0) else 2
        if pos + size > end:
            raise _cut_short()
        first = data[pos]
        second = data[pos + 1] if size == 2 else 0
        pos += size
        if tick > got.max_ticks:
            if kind in (0x80, 0x90):
                raise MidiError("melody longer than the limit", "too_long")
            return
        if kind not in (0x80, 0x90, 0xC0):
            continue
        first = min(first, 127)  # out-of-range data bytes are clipped, as mido's clip=True does
        channel = status & 0x0F
        if kind == 0xC0:
            got.programs.setdefault((track, channel), first)
        elif kind == 0x90 and second:
            got.note_ons += 1
            if got.note_ons > MAX_NOTES:
                raise MidiError(f"more than {MAX_NOTES} notes", "too_long")
            sounding.setdefault(channel << 7 | first, deque()).append(tick)
        else:
            starts = sounding.get(channel << 7 | first)
            if starts:
                start = starts.popleft()
                if tick > start:
                    notes = got.notes.get((track, channel))
                    if notes is None:
                        notes = got.notes[track, channel] = _Notes()
                    notes.pitch.append(first)
                    notes.start.append(start)
                    notes.end.append(tick)


def _varlen(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A variable-length number (at most 4 bytes, as the standard says) and the position after it."""
    value = 0
    for i in range(pos, min(pos + 4, end)):
        byte = data[i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, i + 1
    raise MidiError("a variable-length number is cut short or longer than 4 bytes", "corrupt")


def _cut_short() -> MidiError:
    return MidiError("an event runs past the end of its track", "corrupt")


def supported_time_signature(ts: tuple[int, int]) -> bool:
    """Whether the grid can hold this metre: whole steps per bar, at most 32 of them."""
    num, den = ts
    return 1 <= num <= 16 and den in (1, 2, 4, 8, 16) and (16 * num) % den == 0 and 4 <= 16 * num // den <= 32


def choose_voice(voices: list[Voice]) -> Voice:
    """The melodic voice: no drums; favour high register, monophony and enough notes."""
    return voices[_choose([_Voice.of(v) for v in voices])]


def _choose(voices: list[_Voice]) -> int:
    """The index of the melodic voice (see ``choose_voice``)."""
    if not any(len(v.pitch) for v in voices):
        raise MidiError("the file has no notes", "no_notes")
    melodic = [i for i, v in enumerate(voices) if len(v.pitch) and not v.is_drum]
    if not melodic:
        raise MidiError("the file has only drums", "drums_only")

    def score(i: int) -> float:
        v = voices[i]
        overlap = float(np.mean(v.start[1:] < v.end[:-1] - 1e-6)) if len(v.pitch) > 1 else 0.0
        return float(np.mean(v.pitch.astype(float))) + 12.0 * (1.0 - overlap) + 4.0 * math.log(len(v.pitch))

    return max(melodic, key=score)


def melody_from_voices(
    voices: list[Voice], tempo_bpm: float = 120.0, time_signature: tuple[int, int] = (4, 4), pickup: int = 0
) -> Melody:
    """Choose the melodic voice, take its top line, quantise; raise ``MidiError`` if nothing is left.

    ``pickup``: steps of an anacrusis before the first bar line (the first bar is then that short)."""
    return _melody([_Voice.of(v) for v in voices], tempo_bpm, time_signature, pickup)


def _melody(voices: list[_Voice], tempo_bpm: float, time_signature: tuple[int, int],
            pickup: int = 0) -> Melody:
    voice = voices[_choose(voices)]
    if not supported_time_signature(time_signature):
        time_signature, pickup = (4, 4), 0
    events = _skyline(voice.pitch, voice.start, voice.end)
    steps_per_bar = STEPS_PER_QUARTER * 4 * time_signature[0] // time_signature[1]
    if 0 < pickup < steps_per_bar:  # the anacrusis ends the first (full, silent at first) bar
        events = [REST] * (steps_per_bar - pickup) + events
    first = next(i for i, e in enumerate(events) if e >= 0)
    events = events[(first // steps_per_bar) * steps_per_bar :]
    events = canonical(events + [REST] * (-len(events) % steps_per_bar))
    if len(events) > MAX_STEPS:
        raise MidiError(f"melody of {len(events)} steps is longer than the limit", "too_long")
    return Melody(tuple(events), time_signature, round(tempo_bpm, 2), voice.program)


def skyline(notes: list[Note]) -> list[int]:
    """Quantise notes to the grid and keep the highest sounding pitch at every step.

    Work is linear in the number of notes plus (distinct pitches x steps), whatever the note lengths.
    """
    return _skyline(np.array([n.pitch for n in notes], dtype=np.int64), np.array([n.start for n in notes]),
                    np.array([n.end for n in notes]))


def _skyline(pitch: np.ndarray, start_quarters: np.ndarray, end_quarters: np.ndarray) -> list[int]:
    if not len(pitch):
        raise MidiError("the file has no notes", "no_notes")
    start = np.rint(start_quarters * STEPS_PER_QUARTER).astype(np.int64).clip(0)
    end = np.rint(end_quarters * STEPS_PER_QUARTER).astype(np.int64)
    end = np.maximum(start + 1, end)
    n_steps = int(end.max())
    if n_steps > MAX_STEPS * 4:
        raise MidiError(f"{n_steps} steps", "too_long")
    top = np.full(n_steps, -1, dtype=np.int64)
    for p in np.unique(pitch)[::-1]:  # highest first: a step takes the first pitch that covers it
        mine = pitch == p
        ons = np.bincount(start[mine], minlength=n_steps)
        offs = np.bincount(end[mine], minlength=n_steps + 1)[:n_steps]
        free = (np.cumsum(ons - offs) > 0) & (top < 0)
        top[free] = p
    onset = np.zeros(n_steps, dtype=bool)
    onset[start[top[start] == pitch]] = True
    events: list[int] = []
    previous = -1
    for t in range(n_steps):
        pitch_t = int(top[t])
        if pitch_t < 0:
            events.append(REST if previous >= 0 or t == 0 else HOLD)
        elif onset[t] or pitch_t != previous:
            events.append(pitch_t)
        else:
            events.append(HOLD)
        previous = pitch_t
    return events
