"""The one path from MIDI (or any note list) to a monophonic ``Melody``.

Pick the melodic track (never drums; prefer many notes, high register, little overlap), take
the top line where notes overlap, quantise to the step grid, keep tempo and time signature.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from composer.errors import MidiError
from composer.melody import HOLD, REST, STEPS_PER_QUARTER, Melody, canonical

#: Files larger than this are refused before parsing.
MAX_FILE_BYTES = 2 * 1024 * 1024
#: Melodies longer than this many steps (1,000 bars of 4/4) are refused.
MAX_STEPS = 16_000
MAX_NOTES = 200_000
MAX_TRACKS = 256


@dataclass(frozen=True)
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


def melody_from_midi(source: bytes | str | Path) -> Melody:
    """Read a MIDI file (bytes or a path) and return its melody, or raise ``MidiError``."""
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    if len(data) > MAX_FILE_BYTES:
        raise MidiError(f"file is {len(data)} bytes, limit {MAX_FILE_BYTES}", "too_large")
    if not (data.startswith(b"MThd") or data.startswith(b"RIFF")):
        raise MidiError("not a MIDI file (no MThd header)", "not_midi")
    try:
        mid = mido.MidiFile(file=io.BytesIO(data), clip=True)
    except Exception as exc:  # mido raises many types on corrupt input
        raise MidiError(f"corrupt MIDI file: {exc}", "corrupt") from exc
    voices, tempo, time_signature = _read_mido(mid)
    return melody_from_voices(voices, tempo, time_signature)


def _read_mido(mid: mido.MidiFile) -> tuple[list[Voice], float, tuple[int, int]]:
    if mid.type == 2:
        raise MidiError("MIDI type 2 (sequential songs) is not supported", "corrupt")
    if len(mid.tracks) > MAX_TRACKS:
        raise MidiError(f"{len(mid.tracks)} tracks", "too_long")
    tpq = mid.ticks_per_beat
    if not tpq or tpq <= 0:
        raise MidiError("SMPTE or zero time division is not supported", "corrupt")
    tempo: float | None = None
    time_signature: tuple[int, int] | None = None
    # Notes per (track, channel); program from the last program change before the first note.
    open_notes: dict[tuple[int, int, int], list[int]] = {}
    notes: dict[tuple[int, int], list[Note]] = {}
    programs: dict[tuple[int, int], int] = {}
    max_ticks = MAX_STEPS * tpq // STEPS_PER_QUARTER
    count = 0
    for t_index, track in enumerate(mid.tracks):
        tick = 0
        for msg in track:
            tick += msg.time
            if tick > max_ticks:
                if msg.type in ("note_on", "note_off"):
                    raise MidiError("melody longer than the limit", "too_long")
                break
            if msg.type == "set_tempo" and tempo is None and msg.tempo > 0:
                tempo = mido.tempo2bpm(msg.tempo)
            elif msg.type == "time_signature" and time_signature is None:
                time_signature = (msg.numerator, msg.denominator)
            elif msg.type == "program_change":
                programs.setdefault((t_index, msg.channel), msg.program)
            elif msg.type == "note_on" and msg.velocity > 0:
                count += 1
                if count > MAX_NOTES:
                    raise MidiError("too many notes", "too_long")
                open_notes.setdefault((t_index, msg.channel, msg.note), []).append(tick)
            elif msg.type in ("note_off", "note_on"):
                starts = open_notes.get((t_index, msg.channel, msg.note))
                if starts:
                    start = starts.pop(0)
                    if tick > start:
                        notes.setdefault((t_index, msg.channel), []).append(
                            Note(msg.note, start / tpq, tick / tpq)
                        )
    voices = [
        Voice(sorted(ns, key=lambda n: n.start), is_drum=channel == 9,
              program=programs.get((track, channel), 0))
        for (track, channel), ns in notes.items()
    ]
    bpm = tempo if tempo is not None and 20.0 <= tempo <= 400.0 else 120.0
    return voices, bpm, time_signature or (4, 4)


def supported_time_signature(ts: tuple[int, int]) -> bool:
    """Whether the grid can hold this metre: whole steps per bar, at most 32 of them."""
    num, den = ts
    return 1 <= num <= 16 and den in (1, 2, 4, 8, 16) and (16 * num) % den == 0 and 4 <= 16 * num // den <= 32


def choose_voice(voices: list[Voice]) -> Voice:
    """The melodic voice: no drums; favour high register, monophony and enough notes."""
    if not any(v.notes for v in voices):
        raise MidiError("the file has no notes", "no_notes")
    melodic = [v for v in voices if v.notes and not v.is_drum]
    if not melodic:
        raise MidiError("the file has only drums", "drums_only")

    def score(v: Voice) -> float:
        pitches = np.array([n.pitch for n in v.notes], dtype=float)
        starts = np.array([n.start for n in v.notes])
        ends = np.array([n.end for n in v.notes])
        overlap = float(np.mean(starts[1:] < ends[:-1] - 1e-6)) if len(v.notes) > 1 else 0.0
        return float(np.mean(pitches)) + 12.0 * (1.0 - overlap) + 4.0 * math.log(len(v.notes))

    return max(melodic, key=score)


def melody_from_voices(
    voices: list[Voice], tempo_bpm: float = 120.0, time_signature: tuple[int, int] = (4, 4)
) -> Melody:
    """Choose the melodic voice, take its top line, quantise; raise ``MidiError`` if nothing is left."""
    voice = choose_voice(voices)
    if not supported_time_signature(time_signature):
        time_signature = (4, 4)
    events = skyline(voice.notes)
    steps_per_bar = STEPS_PER_QUARTER * 4 * time_signature[0] // time_signature[1]
    first = next(i for i, e in enumerate(events) if e >= 0)
    events = events[(first // steps_per_bar) * steps_per_bar :]
    events = canonical(events + [REST] * (-len(events) % steps_per_bar))
    if len(events) > MAX_STEPS:
        raise MidiError(f"melody of {len(events)} steps is longer than the limit", "too_long")
    return Melody(tuple(events), time_signature, round(tempo_bpm, 2), voice.program)


def skyline(notes: list[Note]) -> list[int]:
    """Quantise notes to the grid and keep the highest sounding pitch at every step."""
    spans = []
    for n in notes:
        start = round(n.start * STEPS_PER_QUARTER)
        end = max(start + 1, round(n.end * STEPS_PER_QUARTER))
        spans.append((n.pitch, start, end))
    if not spans:
        raise MidiError("the file has no notes", "no_notes")
    n_steps = max(end for _, _, end in spans)
    if n_steps > MAX_STEPS * 4:
        raise MidiError(f"{n_steps} steps", "too_long")
    top = np.full(n_steps, -1, dtype=np.int16)
    onset = np.zeros(n_steps, dtype=bool)
    for pitch, start, end in spans:
        np.maximum(top[start:end], pitch, out=top[start:end])
    for pitch, start, _ in spans:
        if top[start] == pitch:
            onset[start] = True
    events: list[int] = []
    previous = -1
    for t in range(n_steps):
        pitch = int(top[t])
        if pitch < 0:
            events.append(REST if previous >= 0 or t == 0 else HOLD)
        elif onset[t] or pitch != previous:
            events.append(pitch)
        else:
            events.append(HOLD)
        previous = pitch
    return events
