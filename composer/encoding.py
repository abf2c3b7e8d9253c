"""Melody <-> token ids for the models, with the position in the bar as a second input."""

from __future__ import annotations

import numpy as np

from composer.melody import HOLD, REST, Melody, canonical

PAD, START, END, REST_ID, HOLD_ID = 0, 1, 2, 3, 4
LOW_PITCH, HIGH_PITCH = 48, 84
FIRST_PITCH_ID = 5
VOCAB_SIZE = FIRST_PITCH_ID + HIGH_PITCH - LOW_PITCH + 1
#: Bar positions the models know (a 32-step bar is 8/4); position ids are 0..MAX_POSITIONS-1.
MAX_POSITIONS = 32


def token_name(token: int) -> str:
    names = {PAD: "PAD", START: "START", END: "END", REST_ID: "REST", HOLD_ID: "HOLD"}
    return names.get(token, f"NOTE_{token - FIRST_PITCH_ID + LOW_PITCH}")


def event_to_token(event: int) -> int:
    if event == HOLD:
        return HOLD_ID
    if event == REST:
        return REST_ID
    if not LOW_PITCH <= event <= HIGH_PITCH:
        raise ValueError(f"pitch {event} outside {LOW_PITCH}..{HIGH_PITCH}")
    return FIRST_PITCH_ID + event - LOW_PITCH


def token_to_event(token: int) -> int:
    if token == HOLD_ID:
        return HOLD
    if token == REST_ID:
        return REST
    if FIRST_PITCH_ID <= token < VOCAB_SIZE:
        return token - FIRST_PITCH_ID + LOW_PITCH
    raise ValueError(f"token {token} is no melody event")


def fit_range(melody: Melody) -> Melody | None:
    """Shift by octaves into LOW_PITCH..HIGH_PITCH; None if the melody spans too wide a range."""
    pitches = melody.pitches()
    if not pitches:
        return None
    low, high = min(pitches), max(pitches)
    if high - low > HIGH_PITCH - LOW_PITCH:
        return None
    shift = 0
    while low + shift < LOW_PITCH:
        shift += 12
    while high + shift > HIGH_PITCH:
        shift -= 12
    if low + shift < LOW_PITCH:
        # Fits only off the octave grid: centre it instead.
        shift = LOW_PITCH - low
    return melody.transposed(shift) if shift else melody


def encode(melody: Melody) -> list[int]:
    """Token ids of the melody's events (no START or END)."""
    return [event_to_token(e) for e in melody.events]


def decode(tokens: list[int] | np.ndarray, like: Melody | None = None) -> Melody:
    """A melody from token ids (START/END/PAD dropped), with metre and tempo taken from ``like``."""
    events = canonical([token_to_event(int(t)) for t in tokens if int(t) not in (PAD, START, END)])
    if like is None:
        return Melody(tuple(events))
    return like.replace(events=tuple(events))


def positions(n_steps: int, steps_per_bar: int, offset: int = 0) -> np.ndarray:
    """Position-in-bar ids of steps ``offset`` .. ``offset + n_steps - 1``."""
    return ((np.arange(n_steps) + offset) % steps_per_bar).astype(np.int32)


def training_pair(melody: Melody) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Teacher-forcing arrays ``(inputs, input_positions, targets)`` for one melody.

    Inputs are START + tokens; targets are tokens + END; the position input is the position
    of the step being predicted (END gets the position just after the last step).
    """
    tokens = encode(melody)
    inputs = np.array([START, *tokens], dtype=np.int32)
    targets = np.array([*tokens, END], dtype=np.int32)
    return inputs, positions(len(inputs), melody.steps_per_bar), targets
