"""Key finding (Krumhansl-Kessler profiles) over batches of event arrays, and key names."""

from __future__ import annotations

import numpy as np

from composer.melody import HOLD

_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
#: Rows 0..11: major keys on tonic 0..11; rows 12..23: minor keys. Centred and unit length.
_PROFILES = np.stack([np.roll(p, k) for p in (_MAJOR, _MINOR) for k in range(12)])
_PROFILES = _PROFILES - _PROFILES.mean(axis=1, keepdims=True)
_PROFILES /= np.linalg.norm(_PROFILES, axis=1, keepdims=True)
_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def sounding_pitches(events: np.ndarray) -> np.ndarray:
    """Per step, the pitch sounding then (-1 in silence), for events ``(B, T)``."""
    steps = np.arange(events.shape[1])
    last_change = np.where(events != HOLD, steps, 0)
    np.maximum.accumulate(last_change, axis=1, out=last_change)
    sounding = np.take_along_axis(events, last_change, axis=1)
    return np.where(sounding >= 0, sounding, -1)


def pitch_class_durations(events: np.ndarray) -> np.ndarray:
    """Steps each pitch class sounds, ``(B, 12)``."""
    sounding = sounding_pitches(events)
    rows, cols = np.nonzero(sounding >= 0)
    flat = rows * 12 + sounding[rows, cols] % 12
    return np.bincount(flat, minlength=events.shape[0] * 12).reshape(-1, 12).astype(float)


def estimate_keys(events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The most likely key of each row of ``events (B, T)``: ``(tonic pitch class, is_minor)``."""
    weights = pitch_class_durations(events)
    weights -= weights.mean(axis=1, keepdims=True)
    best = (weights @ _PROFILES.T).argmax(axis=1)
    return best % 12, best >= 12


def normalising_shift(events: np.ndarray) -> int:
    """Semitones (-6..+5) that move the estimated key of ``events (T,)`` to C major or A minor."""
    (tonic,), (minor,) = estimate_keys(np.asarray(events)[None, :])
    relative_major = (tonic + 3) % 12 if minor else tonic
    return int((6 - relative_major) % 12 - 6)


def key_name(tonic: int, minor: bool) -> str:
    """``"G major"``, ``"Bb minor"``: the spelling pretty_midi's key signatures read."""
    return f"{_NAMES[int(tonic) % 12]} {'minor' if minor else 'major'}"


def stable_degrees(tonic: int, minor: bool) -> tuple[int, int, int]:
    """Pitch classes of the tonic, third and fifth: where a melody can come to rest."""
    return tonic % 12, (tonic + (3 if minor else 4)) % 12, (tonic + 7) % 12
