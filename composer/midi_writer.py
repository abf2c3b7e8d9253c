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
    pm.time_signature_changes.append(pretty_midi.TimeSignature(num, den, 0.0))
    if melody.key:
        with contextlib.suppress(ValueError):
            pm.key_signature_changes.append(
                pretty_midi.KeySignature(pretty_midi.key_name_to_key_number(melody.key), 0.0)
            )
    instrument = pretty_midi.Instrument(program=melody.program, name="Melody")
    step = melody.seconds_per_step
    for pitch, start, end in melody.notes():
        instrument.notes.append(pretty_midi.Note(VELOCITY, pitch, start * step, end * step))
    pm.instruments.append(instrument)
    return pm


def melody_to_midi(melody: Melody) -> bytes:
    """Standard MIDI File bytes of the melody."""
    buffer = io.BytesIO()
    melody_to_pretty_midi(melody).write(buffer)
    return buffer.getvalue()
