"""How alike two sets of melodies are, after MGEval (Yang and Lerch 2018, "On the evaluation of
generative models in music").

Each melody gets a few features (pitch range, pitch-class histogram and entropy, scale consistency,
interval histogram, note-length histogram, rests). For each feature, the distances between every pair
of real melodies (intra-set) and between every generated and every real melody (inter-set) form two
distributions; their Gaussian kernel density estimates' overlapping area is 1 when the generated
melodies sit among the real ones as the real ones sit among themselves, and near 0 when they are apart.
"""

from __future__ import annotations

import random

import numpy as np

from composer.keys import sounding_pitches
from composer.melody import Melody

FEATURES = ("pitch_range", "pitch_class_histogram", "pitch_class_entropy", "scale_consistency",
            "interval_histogram", "note_length_histogram", "rests")
#: Note-length classes in steps (16ths): 1, 2, 3, 4, 5-6, 7-8, 9-12, 13-16, longer.
NOTE_LENGTH_EDGES = np.array([1, 2, 3, 4, 5, 7, 9, 13, 17])
#: Interval classes: 0..12 semitones, then wider.
MAX_INTERVAL = 12
_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
#: Every major scale (the natural minor scales are the same pitch-class sets).
_SCALES = np.stack([np.isin(np.arange(12), (_MAJOR + k) % 12) for k in range(12)])
_GRID_POINTS = 512


def _normalised(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts.astype(float)


def melody_features(melody: Melody) -> dict[str, np.ndarray]:
    """The features of one melody, each as a 1-D array."""
    notes = melody.notes()
    pitches = np.array([p for p, _, _ in notes], dtype=int)
    lengths = np.array([end - start for _, start, end in notes], dtype=int)
    pc_hist = _normalised(np.bincount(pitches % 12, minlength=12).astype(float))
    nonzero = pc_hist[pc_hist > 0]
    intervals = np.minimum(np.abs(np.diff(pitches)), MAX_INTERVAL + 1)
    length_class = np.searchsorted(NOTE_LENGTH_EDGES, lengths, "right") - 1
    silent = sounding_pitches(np.array([melody.events], dtype=int))[0] < 0 if melody.n_steps else np.ones(1)
    return {
        "pitch_range": np.array([float(np.ptp(pitches)) if len(pitches) else 0.0]),
        "pitch_class_histogram": pc_hist,
        "pitch_class_entropy": np.array([float(-(nonzero * np.log2(nonzero)).sum())]),
        "scale_consistency": np.array([float((_SCALES[:, pitches % 12].mean(axis=1)).max())
                                       if len(pitches) else 0.0]),
        "interval_histogram": _normalised(np.bincount(intervals, minlength=MAX_INTERVAL + 2).astype(float)),
        "note_length_histogram": _normalised(np.bincount(length_class, minlength=len(NOTE_LENGTH_EDGES))
                                             .astype(float)),
        "rests": np.array([float(silent.mean())]),
    }


def _feature_matrix(melodies: list[Melody]) -> dict[str, np.ndarray]:
    rows = [melody_features(m) for m in melodies]
    return {name: np.stack([r[name] for r in rows]) for name in FEATURES}


def _distances(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances between rows of ``a`` and ``b``; within ``a`` (each pair once) if no ``b``."""
    other = a if b is None else b
    d = np.linalg.norm(a[:, None, :] - other[None, :, :], axis=2)
    return d[np.triu_indices(len(a), k=1)] if b is None else d.ravel()


def _kde(samples: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    z = (grid[:, None] - samples[None, :]) / bandwidth
    return np.exp(-0.5 * z * z).sum(axis=1) / (len(samples) * bandwidth * np.sqrt(2 * np.pi))


def _bandwidth(samples: np.ndarray, spread: float) -> float:
    """Scott's rule, floored so that identical samples still give a density."""
    return max(float(np.std(samples)) * len(samples) ** -0.2, 1e-3 * max(spread, 1.0))


def overlap_area(a: np.ndarray, b: np.ndarray) -> float:
    """Overlapping area (0..1) of the Gaussian kernel density estimates of two samples."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("overlap needs at least two distances per sample")
    low, high = min(a.min(), b.min()), max(a.max(), b.max())
    ha, hb = _bandwidth(a, high - low), _bandwidth(b, high - low)
    pad = 4 * max(ha, hb)
    grid = np.linspace(low - pad, high + pad, _GRID_POINTS)
    return float(np.trapezoid(np.minimum(_kde(a, grid, ha), _kde(b, grid, hb)), grid))


def feature_overlaps(generated: list[Melody], real: list[Melody]) -> dict[str, float]:
    """Per feature, the overlap of the real set's intra-set distances with the generated-to-real
    inter-set distances (1 = indistinguishable). Needs at least 2 melodies in each set."""
    gen, ref = _feature_matrix(generated), _feature_matrix(real)
    return {name: overlap_area(_distances(ref[name]), _distances(gen[name], ref[name])) for name in FEATURES}


def overlap_ceiling(real: list[Melody], seed: int = 0) -> dict[str, float]:
    """``feature_overlaps`` of one random half of the real set against the other: what a perfect
    generator of melodies like these would score on a set this size."""
    shuffled = list(real)
    random.Random(seed).shuffle(shuffled)
    half = len(shuffled) // 2
    return feature_overlaps(shuffled[:half], shuffled[half:])
