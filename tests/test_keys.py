"""Key normalisation: pieces moved to C major / A minor for training, melodies moved back to a key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from composer.compose import ComposeRequest, compose
from composer.dataset import in_c, prepare
from composer.keys import estimate_keys, normalising_shift
from composer.melody import HOLD, Melody
from composer.model_store import ModelLibrary

MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11, 12, 11, 9, 7, 5, 4, 2, 0)
MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10, 12, 10, 8, 7, 5, 3, 2, 0)


def _scale(tonic: int, steps: tuple[int, ...] = MAJOR_STEPS, length: int = 2) -> Melody:
    return Melody(tuple(e for s in steps for e in (tonic + s, *(HOLD,) * (length - 1))), (4, 4))


@pytest.mark.parametrize(("tonic", "steps", "shift"), [
    (60, MAJOR_STEPS, 0), (67, MAJOR_STEPS, 5), (62, MAJOR_STEPS, -2), (66, MAJOR_STEPS, -6),
    (69, MINOR_STEPS, 0), (64, MINOR_STEPS, 5), (62, MINOR_STEPS, -5),
])
def test_the_shift_lands_on_c_major_or_a_minor(tonic: int, steps: tuple[int, ...], shift: int) -> None:
    melody = _scale(tonic, steps)
    assert normalising_shift(np.array(melody.events)) == shift
    moved, moved_by = in_c(melody)
    (key,), (minor,) = estimate_keys(np.array([moved.events]))
    assert (int(key), bool(minor)) == ((9, True) if steps is MINOR_STEPS else (0, False))
    assert moved_by % 12 == shift % 12 and moved == melody.transposed(moved_by)


def test_prepare_moves_every_piece_and_counts_the_shifts() -> None:
    melodies = [_scale(60 + k % 12) for k in range(40)]
    data = prepare(melodies, target_tokens=4_000, seed=1, normalise_keys=True)
    # Tonics C..Eb come 4 times, the others 3; tonic t is moved by -t (mod 12).
    assert data.key_shifts == [4 if (-shift) % 12 < 4 else 3 for shift in range(12)]
    for piece in data.split.train + data.split.validation + data.split.test:
        assert normalising_shift(np.array(piece.events)) == 0
    repeats = len(data.augmented) // len(data.split.train)
    assert repeats >= 1 and len(data.augmented) == repeats * len(data.split.train)
    plain = prepare(melodies, target_tokens=4_000, seed=1)
    assert plain.key_shifts is None and len(plain.split.test) == len(data.split.test)


@pytest.fixture()
def library(untrained_models_dir: Path, tmp_path: Path) -> ModelLibrary:
    """``alpha`` as trained in all keys, and the same weights as ``alpha_in_c``, whose corpus was all
    in G major (every piece moved up 5 semitones to reach C)."""
    shutil.copytree(untrained_models_dir / "alpha", tmp_path / "alpha")
    shutil.copytree(untrained_models_dir / "alpha", tmp_path / "alpha_in_c")
    config = json.loads((tmp_path / "alpha_in_c" / "config.json").read_text())
    config["key_shifts"] = [0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0]
    (tmp_path / "alpha_in_c" / "config.json").write_text(json.dumps(config))
    return ModelLibrary(tmp_path)


def test_a_normalised_style_plays_in_a_key_of_its_corpus(library: ModelLibrary) -> None:
    assert library.get("alpha").info.key_shifts is None
    for seed in (1, 2, 3):
        plain = compose(ComposeRequest(style="alpha", bars=4, seed=seed), library).melody
        moved = compose(ComposeRequest(style="alpha_in_c", bars=4, seed=seed), library).melody
        assert moved.events == tuple(e - 5 if e >= 0 else e for e in plain.events)
        assert moved.key.split()[1] == plain.key.split()[1] and moved.key != plain.key


def test_a_primer_is_continued_in_its_own_key(library: ModelLibrary) -> None:
    primer = _scale(62, (*MAJOR_STEPS, 0), length=4)  # D major, 4 bars of quarter notes
    moved = compose(ComposeRequest(style="alpha_in_c", bars=2, seed=4, primer=primer, primer_bars=2),
                    library)
    assert moved.primer_steps == 32 and moved.melody.events[:32] == primer.events[32:]
    # The models hear the primer in C (down 2) and their continuation comes back up 2.
    in_c_primer = primer.transposed(-2)
    plain = compose(ComposeRequest(style="alpha", bars=2, seed=4, primer=in_c_primer, primer_bars=2), library)
    assert moved.melody.events == tuple(e + 2 if e >= 0 else e for e in plain.melody.events)


def test_a_mix_with_a_normalised_style_is_composed_in_c(library: ModelLibrary) -> None:
    mixed = compose(ComposeRequest(style="alpha+alpha_in_c", bars=4, seed=5), library).melody
    plain = compose(ComposeRequest(style="alpha", bars=4, seed=5), library).melody
    assert mixed.events == tuple(e - 5 if e >= 0 else e for e in plain.events)
