"""A melody as a playable Standard MIDI File with tempo, time signature and instrument."""

from __future__ import annotations

import contextlib
import io

import pretty_midi

from composer.melody import Melody

VELOCITY = 96


def melody_to_pretty_midi(melody: Melody) -> pretty_midi.PrettyMIDI:
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
        with contextlib.suppress(ValueError):
            pm.key_signature_changes.append(
                pretty_midi.KeySignature(pretty_midi.key_name_to_key_number(melody.key), 0.0)
            )
    instrument = pretty_midi.Instrument(program=melody.program, name="Melody")
    for pitch, start, end in melody.notes():
        instrument.notes.append(pretty_midi.Note(VELOCITY, pitch, (start - skip) * step, (end - skip) * step))
    pm.instruments.append(instrument)
    return pm


def pickup_signature(steps: int) -> tuple[int, int]:
    """The time signature of a pickup bar of ``steps`` sixteenths: 1/4, 3/8, 1/16..."""
    if steps % 4 == 0:
        return steps // 4, 4
    if steps % 2 == 0:
        return steps // 2, 8
    return steps, 16


def melody_to_midi(melody: Melody) -> bytes:
    """Standard MIDI File bytes of the melody."""
    buffer = io.BytesIO()
    melody_to_pretty_midi(melody).write(buffer)
    return buffer.getvalue()
