"""MGEval-style features and overlaps (composer.features)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from composer.features import FEATURES, feature_overlaps, melody_features, overlap_area, overlap_ceiling
from composer.melody import HOLD, REST, Melody


def test_features_of_a_known_melody() -> None:
    # C (quarter), E (eighth), G (eighth), rest (half): 4/4, one bar.
    f = melody_features(Melody((60, HOLD, HOLD, HOLD, 64, HOLD, 67, HOLD, REST) + (HOLD,) * 7))
    assert f["pitch_range"][0] == 7
    assert f["pitch_class_histogram"][[0, 4, 7]] == pytest.approx([1 / 3] * 3)
    assert f["pitch_class_entropy"][0] == pytest.approx(np.log2(3))
    assert f["scale_consistency"][0] == 1.0
    assert f["interval_histogram"][[3, 4]] == pytest.approx([0.5, 0.5])
    assert f["note_length_histogram"][[1, 3]] == pytest.approx([2 / 3, 1 / 3])
    assert f["rests"][0] == 0.5


def test_overlap_area_bounds() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 400)
    assert overlap_area(a, a) == pytest.approx(1.0, abs=1e-3)
    assert overlap_area(a, rng.normal(0, 1, 400)) > 0.85
    assert overlap_area(a, rng.normal(10, 1, 400)) < 0.01
    assert overlap_area(np.zeros(10), np.zeros(10)) == pytest.approx(1.0, abs=1e-3)


def _tunes(seed: int, count: int, scale: tuple[int, ...], lengths: tuple[int, ...]) -> list[Melody]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        events: list[int] = []
        while len(events) < 64:
            events += [60 + rng.choice(scale)] + [HOLD] * (rng.choice(lengths) - 1)
        out.append(Melody(tuple(events[:64])))
    return out


def test_like_sets_overlap_more_than_unlike_ones() -> None:
    major = (0, 2, 4, 5, 7, 9, 11)
    real = _tunes(1, 60, major, (2, 4))
    alike = feature_overlaps(_tunes(2, 40, major, (2, 4)), real)
    unlike = feature_overlaps(_tunes(3, 40, tuple(range(0, 24)), (1, 8)), real)
    ceiling = overlap_ceiling(real)
    assert set(alike) == set(unlike) == set(ceiling) == set(FEATURES)
    assert all(0.0 <= v <= 1.0 + 1e-6 for v in (*alike.values(), *unlike.values(), *ceiling.values()))
    assert np.mean(list(alike.values())) > 0.8 and np.mean(list(ceiling.values())) > 0.8
    assert np.mean(list(unlike.values())) < 0.5
