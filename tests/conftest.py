"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_telegram import FakeTelegram


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The trained models the tests run against (the shipped ones unless COMPOSER_TEST_MODELS says)."""
    return Path(os.environ.get("COMPOSER_TEST_MODELS", "models"))


@pytest.fixture(scope="module")
def telegram() -> Iterator[FakeTelegram]:
    """A fake Bot API server, one per test module that asks for it."""
    with FakeTelegram() as server:
        yield server


#: Shapes of the untrained test-fixture models: two styles that stack, one that does not.
UNTRAINED_STYLES = {
    "alpha": {"units": 24, "layers": 2, "seed": 1, "metres": [[4, 4], [3, 4]], "program": 40},
    "beta": {"units": 24, "layers": 2, "seed": 2, "metres": [[3, 4], [4, 4]], "program": 73},
    "gamma": {"units": 16, "layers": 3, "seed": 3, "metres": [[6, 8]], "program": 0, "top_p": 0.3},
}


def write_untrained_model(folder: Path, spec: dict, **representation: object) -> Path:
    """Test fixture, NOT a shipped model: a tiny Keras model of ``spec``'s shape with random weights,
    exported as training exports it, under ``folder`` (named as the style)."""
    import json
    from dataclasses import asdict

    import numpy as np

    from composer.keras_model import build_keras_model, export_weights
    from composer.lstm import ModelConfig
    from composer.representation import Representation

    metres = tuple(tuple(m) for m in spec["metres"])
    rep = Representation(metres=metres, metre_counts=tuple(range(len(metres), 0, -1)),
                         key_counts=(3, 0, 1, 0, 0, 2, 0, 1, 0, 0, 0, 0) + (0,) * 9 + (2, 0, 0),
                         **representation)  # type: ignore[arg-type]
    config = ModelConfig.for_representation(rep, token_embedding=8, position_embedding=4,
                                            bars_left_embedding=4, control_embedding=4,
                                            units=spec["units"], layers=spec["layers"])
    weights = export_weights(build_keras_model(config))
    rng = np.random.default_rng(spec["seed"])
    # Keras' initial weights give near-uniform outputs; random ones make sharper, testable ones.
    weights = {k: rng.normal(0.0, 0.4, v.shape).astype(np.float32) for k, v in weights.items()}
    weights["dense_kernel"] *= 5.0
    folder.mkdir(parents=True)
    np.savez(folder / "weights.npz", **weights)
    meta = {"style": folder.name, "description": f"untrained test fixture {folder.name}",
            "program": spec["program"], "tempo_bpm": 110, "model": asdict(config),
            "representation": rep.to_config()}
    if "top_p" in spec:
        meta["top_p"] = spec["top_p"]
    (folder / "config.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="session")
def untrained_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Untrained test-fixture models (``write_untrained_model``), so the sampler's tests need no trained
    model."""
    root = tmp_path_factory.mktemp("untrained_models")
    for name, spec in UNTRAINED_STYLES.items():
        write_untrained_model(root / name, spec)
    return root
