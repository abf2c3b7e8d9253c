"""Every shipped style model: complete card, small, really trained, and better than the n-gram."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from composer.dataset import load_melodies
from composer.evaluate import TEST_SPLIT_FILE, sequence_nll
from composer.lstm import LstmModel
from composer.model_store import ModelLibrary
from composer.styles import BUILTIN_STYLES

CARD_FIELDS = ("style", "source", "pieces", "tokens", "vocab_size", "parameters", "train_seconds",
               "test_nll", "ngram_test_nll")


def _style_dirs(models_dir: Path) -> list[Path]:
    return sorted(p.parent for p in models_dir.glob("*/card.json"))


def test_all_builtin_styles_are_shipped(models_dir: Path) -> None:
    assert {p.name for p in _style_dirs(models_dir)} >= set(BUILTIN_STYLES)


@pytest.mark.parametrize("style", sorted(BUILTIN_STYLES))
def test_model_is_trained_and_beats_ngram(models_dir: Path, style: str) -> None:
    folder = models_dir / style
    card = json.loads((folder / "card.json").read_text())
    assert all(field in card for field in CARD_FIELDS)
    info = ModelLibrary(models_dir).get(style).info
    rep = info.representation
    assert card["vocab_size"] == rep.vocab_size
    assert (folder / "weights.npz").stat().st_size <= 10 * 1024 * 1024
    assert card["train_seconds"] < 31 * 60

    model = LstmModel.load(folder)
    assert model.parameters == card["parameters"]
    test_melodies = load_melodies(folder / TEST_SPLIT_FILE)
    nll = sequence_nll(model, rep, test_melodies)
    # The shipped weights reproduce the card, are far from random, and beat both baselines.
    assert nll == pytest.approx(card["test_nll"], abs=2e-3)
    assert nll < 0.5 * math.log(rep.vocab_size)
    assert nll < card["ngram_test_nll"]
    assert nll < card["ltm_stm_test_nll"]
