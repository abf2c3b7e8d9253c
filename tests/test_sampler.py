"""The fast sampler: same next-step distribution as Keras, mixing, masks, top-p, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from composer.encoding import FIRST_PITCH_ID, HOLD_ID, REST_ID, START, decode, encode
from composer.lstm import LstmModel
from composer.sampler import Mixture, _draw, sample


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _stepped(mixture: Mixture, tokens: np.ndarray, steps_per_bar: int) -> np.ndarray:
    """Next-step distributions ``(B, T, V)`` from feeding ``tokens (B, T)`` one step at a time."""
    states = mixture.start(tokens.shape[0])
    steps = range(tokens.shape[1])
    return np.stack([mixture.step(states, tokens[:, t], t % steps_per_bar) for t in steps], axis=1)


def _random_inputs(batch: int, steps: int, seed: int = 0) -> np.ndarray:
    tokens = np.random.default_rng(seed).integers(REST_ID, FIRST_PITCH_ID + 37, size=(batch, steps))
    tokens[:, 0] = START
    return tokens


@pytest.mark.parametrize("style", ["alpha", "gamma"])
def test_next_step_distribution_equals_keras_forward(untrained_models_dir: Path, style: str) -> None:
    from composer.keras_model import build_keras_model, load_weights

    folder = untrained_models_dir / style
    model = LstmModel.load(folder)
    keras_model = build_keras_model(model.config, training_dropout=False)
    with np.load(folder / "weights.npz") as data:
        load_weights(keras_model, {k: data[k] for k in data.files})
    tokens = _random_inputs(3, 70)
    spb = 12
    positions = np.tile(np.arange(70) % spb, (3, 1))
    expected = _softmax(np.asarray(keras_model([tokens, positions], training=False), np.float64))
    got = _stepped(Mixture([model], [1.0]), tokens, spb)
    assert expected.max() > 0.5  # the fixture's weights give sharp, not uniform, distributions
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_mixture_is_the_weighted_average_of_the_styles(untrained_models_dir: Path) -> None:
    models = [LstmModel.load(untrained_models_dir / s) for s in ("alpha", "beta", "gamma")]
    weights = [0.5, 0.3, 0.2]
    mixture = Mixture(models, weights)
    assert len(mixture.stacks) == 2  # alpha and beta step as one stack; gamma has another shape
    tokens = _random_inputs(2, 40, seed=1)
    positions = np.tile(np.arange(40) % 16, (2, 1))
    expected = sum(w * _softmax(m.forward(tokens, positions)) for w, m in zip(weights, models, strict=True))
    np.testing.assert_allclose(_stepped(mixture, tokens, 16), expected, atol=1e-5)


@pytest.fixture(scope="module")
def alpha(untrained_models_dir: Path) -> Mixture:
    return Mixture([LstmModel.load(untrained_models_dir / "alpha")], [1.0])


def test_same_seed_same_tokens(alpha: Mixture) -> None:
    def draw(seed: int) -> np.ndarray:
        return sample(alpha, steps=64, steps_per_bar=16, candidates=3, rng=np.random.default_rng(seed),
                      temperature=0.9, top_p=0.9, cadence_from=48).tokens

    assert np.array_equal(draw(5), draw(5))
    assert not np.array_equal(draw(5), draw(6))


@pytest.mark.parametrize("primer", [[], [FIRST_PITCH_ID + 12, HOLD_ID, REST_ID, HOLD_ID]])
def test_samples_are_canonical_melody_tokens(alpha: Mixture, primer: list[int]) -> None:
    result = sample(alpha, steps=200, steps_per_bar=16, candidates=8, rng=np.random.default_rng(0),
                    temperature=2.0, top_p=1.0, primer=primer)
    assert result.tokens.shape == (8, 200)
    assert result.tokens.min() >= REST_ID
    for row in result.tokens:
        full = primer + row.tolist()
        # No HOLD first, no REST in silence: decoding and re-encoding changes nothing.
        assert encode(decode(full)) == full
    assert np.all(result.log_likelihood < 0)


def test_tiny_top_p_is_greedy(alpha: Mixture, untrained_models_dir: Path) -> None:
    tokens = sample(alpha, steps=48, steps_per_bar=16, candidates=2, rng=np.random.default_rng(0),
                    top_p=0.01).tokens
    model = LstmModel.load(untrained_models_dir / "alpha")
    inputs = np.concatenate([np.full((2, 1), START), tokens[:, :-1]], axis=1)
    logits = model.forward(inputs, np.tile(np.arange(48) % 16, (2, 1)))
    silent = np.zeros(2, bool)
    for t in range(48):
        allowed = np.full(logits[:, t].shape, -np.inf)
        allowed[:, FIRST_PITCH_ID:] = logits[:, t, FIRST_PITCH_ID:]
        allowed[~silent, REST_ID] = logits[~silent, t, REST_ID]  # no REST in silence
        if t:  # no HOLD first
            allowed[:, HOLD_ID] = logits[:, t, HOLD_ID]
        assert np.array_equal(allowed.argmax(axis=1), tokens[:, t])
        silent = (tokens[:, t] == REST_ID) | (silent & (tokens[:, t] == HOLD_ID))


def test_draw_keeps_to_the_nucleus() -> None:
    weights = np.tile(np.array([[0.1, 0.5, 0.0, 0.25, 0.15]], np.float32), (4000, 1))
    uniforms = np.random.default_rng(0).random(4000)
    assert set(_draw(weights, 0.5, uniforms)) == {1}
    assert set(_draw(weights, 0.7, uniforms)) == {1, 3}
    counts = np.bincount(_draw(weights, 1.0, uniforms), minlength=5) / 4000
    np.testing.assert_allclose(counts, [0.1, 0.5, 0.0, 0.25, 0.15], atol=0.03)
