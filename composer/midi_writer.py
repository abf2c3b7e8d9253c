"""A melody as a playable Standard MIDI File with tempo, time signature and instrument."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pretty_midi

from composer.errors import RequestError
from composer.keys import parse_key, signature_key
from composer.melody import Melody

if TYPE_CHECKING:
    from composer.arrange import Track

VELOCITY = 96


def melody_to_pretty_midi(melody: Melody, accompaniment: Sequence[Track] = ()) -> pretty_midi.PrettyMIDI:
    """The melody as the first track, then one track per ``composer.arrange.Track`` (same step grid)."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=float(melody.tempo_bpm))
    num, den = melody.time_signature
    step = melody.seconds_per_step
    # An anacrusis is written as a short first bar (its own time signature), not as a bar of rest.
    pickup = melody.pickup_steps
    skip = melody.steps_per_bar - pickup if pickup else 0
    if pickup:
        pm.time_signature_changes.append(pretty_midi.TimeSignature(*pickup_signature(pickup), 0.0))
    pm.time_signature_changes.append(pretty_midi.TimeSignature(num, den, pickup * step))
    if melody.key:
        with contextlib.suppress(ValueError, RequestError):
            signature = pretty_midi.key_name_to_key_number(signature_key(*parse_key(melody.key)))
            pm.key_signature_changes.append(pretty_midi.KeySignature(signature, 0.0))
    instrument = pretty_midi.Instrument(program=melody.program, name="Melody")
    for pitch, start, end in melody.notes():
        instrument.notes.append(pretty_midi.Note(VELOCITY, pitch, (start - skip) * step, (end - skip) * step))
    pm.instruments.append(instrument)
    for track in accompaniment:
        part = pretty_midi.Instrument(program=track.program, name=track.name)
        part.control_changes.append(pretty_midi.ControlChange(7, track.volume, 0.0))
        for pitch, start, end, velocity in track.notes:
            start = max(start, skip)
            if end > start:
                part.notes.append(
                    pretty_midi.Note(velocity, pitch, (start - skip) * step, (end - skip) * step))
        pm.instruments.append(part)
    return pm


def pickup_signature(steps: int) -> tuple[int, int]:
    """The time signature of a pickup bar of ``steps`` sixteenths: 1/4, 3/8, 1/16..."""
    if steps % 4 == 0:
        return steps // 4, 4
    if steps % 2 == 0:
        return steps // 2, 8
    return steps, 16


def melody_to_midi(melody: Melody, accompaniment: Sequence[Track] = ()) -> bytes:
    """Standard MIDI File bytes of the melody (and its accompaniment tracks, if any)."""
    buffer = io.BytesIO()
    melody_to_pretty_midi(melody, accompaniment).write(buffer)
    return buffer.getvalue()
