"""Key finding (Krumhansl-Kessler profiles) over batches of event arrays, and key names."""

from __future__ import annotations

import re

import numpy as np

from composer.errors import RequestError
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


#: The modes a model can be asked for; ``MODE_MINOR[mode]``: the major/minor key the Krumhansl-Kessler
#: estimate finds a tune in that mode as (a D dorian tune is found in D minor, G mixolydian in G major).
MODES = ("major", "minor", "mixolydian", "dorian")
MODE_MINOR = {"major": False, "minor": True, "mixolydian": False, "dorian": True}


def estimate_mode(events: np.ndarray) -> tuple[int, str]:
    """The tonic and mode of ``events (T,)``: the Krumhansl-Kessler key, called mixolydian where a major
    tune sounds its flattened seventh longer than its leading note, dorian where a minor tune sounds its
    major sixth longer than its minor sixth (how fiddle tunes in "Gmix" and "Ador" read)."""
    events = np.asarray(events)[None, :]
    (tonic,), (minor,) = estimate_keys(events)
    shares = np.roll(pitch_class_durations(events)[0], -int(tonic))
    if minor:
        return int(tonic), "dorian" if shares[9] > shares[8] else "minor"
    return int(tonic), "mixolydian" if shares[10] > shares[11] else "major"


def key_name(tonic: int, mode: str | bool) -> str:
    """``"G major"``, ``"Bb minor"`` (the spelling pretty_midi's key signatures read), ``"A dorian"``;
    ``mode`` is one of ``MODES`` or whether the key is minor."""
    if isinstance(mode, bool | np.bool_):
        mode = "minor" if mode else "major"
    return f"{_NAMES[int(tonic) % 12]} {mode}"


#: Semitones from a church mode's tonic to the major key with its signature (A dorian: G major).
_SIGNATURE_MAJOR = {"mixolydian": 5, "dorian": 10}


def signature_key(tonic: int, mode: str) -> str:
    """The major or minor key whose signature a key in ``mode`` is written with (G mixolydian: C major,
    A dorian: G major): MIDI key signatures know only major and minor."""
    if mode in ("major", "minor"):
        return key_name(tonic, mode)
    return key_name(int(tonic) + _SIGNATURE_MAJOR[mode], "major")


def stable_degrees(tonic: int, minor: bool) -> tuple[int, int, int]:
    """Pitch classes of the tonic, third and fifth: where a melody can come to rest."""
    return tonic % 12, (tonic + (3 if minor else 4)) % 12, (tonic + 7) % 12


_TONICS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
#: How a mode may be written after the tonic (``composer.keys.MODES``; none: major).
_MODE_WORDS = {
    "major": ("major", "maj", "dur", "мажор"),
    "minor": ("minor", "min", "m", "moll", "минор"),
    "mixolydian": ("mixolydian", "mix", "миксолидийский", "миксолидийский лад"),
    "dorian": ("dorian", "dor", "дорийский", "дорийский лад"),
}
_MODE_OF_WORD = {word: mode for mode, words in _MODE_WORDS.items() for word in words}
_KEY = re.compile(r"\s*([a-g])\s*([#b♯♭]?)\s*(.*?)\s*", re.IGNORECASE)


def parse_key(text: str) -> tuple[int, str]:
    """``"D minor"``, ``"f#m"``, ``"Bb major"``, ``"Eb"`` (major), ``"A dorian"``, ``"G mix"`` -> (tonic
    pitch class, mode); a mode is one of ``composer.keys.MODES``."""
    match = _KEY.fullmatch(text or "")
    mode = _MODE_OF_WORD.get(" ".join(match[3].lower().split()) or "major") if match else None
    if not match or mode is None:
        raise RequestError(f"not a key: {text!r} (say e.g. 'D minor', 'Bb major' or 'A dorian')", "bad_key")
    letter, accidental = match[1], match[2]
    tonic = _TONICS[letter.lower()] + {"#": 1, "♯": 1, "b": -1, "♭": -1, "": 0}[accidental]
    return tonic % 12, mode
