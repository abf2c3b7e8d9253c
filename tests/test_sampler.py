"""The fast sampler: same next-step distribution as Keras, mixing, masks, top-p, determinism."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from composer.lstm import LstmModel
from composer.melody import Melody
from composer.representation import FIRST_PITCH_ID, HOLD_ID, REST_ID, START, Representation, Undo
from composer.sampler import Mixture, _draw, _range_of, _range_tables, sample


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


REP = Representation()


def _stepped(mixture: Mixture, inputs: tuple[np.ndarray, ...], controls: list[int]) -> np.ndarray:
    """Next-step distributions ``(B, T, V)`` from feeding ``inputs`` one step at a time (one position,
    bars-left value and control for the whole batch, as the sampler has)."""
    tokens, positions, left, _ = inputs
    states = mixture.start(tokens.shape[0], controls)
    steps = range(tokens.shape[1])
    return np.stack([mixture.step(states, tokens[:, t], int(positions[0, t]), int(left[0, t]))
                     for t in steps], axis=1)


def _random_inputs(batch: int, steps: int, seed: int = 0, spb: int = 12, control: int = 1) -> tuple:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(REST_ID, REP.input_vocab_size, size=(batch, steps))
    tokens[:, 0] = START
    positions = np.tile(np.arange(steps) % spb, (batch, 1))
    left = np.tile(np.clip(steps // spb - np.arange(steps) // spb, 0, 16), (batch, 1))
    return tokens, positions, left, np.full((batch, steps), control)


@pytest.mark.parametrize("style", ["alpha", "gamma"])
def test_next_step_distribution_equals_keras_forward(untrained_models_dir: Path, style: str) -> None:
    from composer.keras_model import build_keras_model, load_weights

    folder = untrained_models_dir / style
    model = LstmModel.load(folder)
    keras_model = build_keras_model(model.config, training_dropout=False)
    with np.load(folder / "weights.npz") as data:
        load_weights(keras_model, {k: data[k] for k in data.files})
    inputs = _random_inputs(3, 70)
    expected = _softmax(np.asarray(keras_model(list(inputs), training=False), np.float64))
    got = _stepped(Mixture([model], [1.0]), inputs, [1])
    assert expected.max() > 0.3  # the fixture's weights give sharp, not uniform, distributions
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(_softmax(model.forward(inputs)), expected, atol=1e-4)


def _random_keras_model(seed: int, **shape: bool):
    """A small Keras model of ``REP``, random weights (``shape``: pitch-class sharing, interval terms)."""
    from composer.keras_model import build_keras_model
    from composer.lstm import ModelConfig

    config = ModelConfig.for_representation(REP, token_embedding=8, position_embedding=4,
                                            bars_left_embedding=4, control_embedding=4, units=12, layers=2,
                                            **shape)
    keras_model = build_keras_model(config, training_dropout=False, rep=REP)
    rng = np.random.default_rng(seed)
    for layer in keras_model.layers:
        layer.set_weights([rng.normal(0.0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    return config, keras_model


def test_pitch_class_sharing_folds_into_the_exported_weights() -> None:
    """Trained with a term per pitch class shared by every octave, the model the sampler loads (the
    terms folded into the token embedding and output kernel) gives the Keras model's distribution, and
    the same pitch class in two octaves gets the same shared term."""
    from composer.keras_model import PITCH_CLASS_DENSE, build_keras_model, export_weights, load_weights

    config, keras_model = _random_keras_model(3, pitch_class_sharing=True)
    kernel = keras_model.get_layer(PITCH_CLASS_DENSE).get_weights()[0]
    weights = export_weights(keras_model, REP)
    model = LstmModel(config, weights)
    inputs = _random_inputs(3, 40)
    expected = _softmax(np.asarray(keras_model(list(inputs), training=False), np.float64))
    np.testing.assert_allclose(_softmax(model.forward(inputs)), expected, atol=1e-4)
    c4, c5 = FIRST_PITCH_ID + 60 - REP.low_pitch, FIRST_PITCH_ID + 72 - REP.low_pitch
    own = keras_model.get_layer("dense").get_weights()[0]
    shared = weights["dense_kernel"][:, [c4, c5]] - own[:, [c4, c5]]
    np.testing.assert_allclose(shared[:, 0], kernel[:, 0], atol=1e-6)
    np.testing.assert_allclose(shared[:, 1], kernel[:, 0], atol=1e-6)
    # Loaded back (the shared terms zeroed, the folded weights in place), Keras gives the same again.
    reloaded = build_keras_model(config, training_dropout=False, rep=REP)
    load_weights(reloaded, weights)
    again = _softmax(np.asarray(reloaded(list(inputs), training=False), np.float64))
    np.testing.assert_allclose(again, expected, atol=1e-4)
    with pytest.raises(ValueError, match="representation"):
        build_keras_model(config)


def test_interval_terms_are_one_term_per_interval_in_keras_numpy_and_the_sampler() -> None:
    """Trained with a term per interval from the sounding pitch, the exported model gives the Keras model's
    distribution step by step, as the sampler's stack does; an octave up gets the same term from every
    pitch, struck or held; after START or a rest there is none."""
    from composer.keras_model import INTERVAL_DENSE, build_keras_model, export_weights, load_weights

    config, keras_model = _random_keras_model(5, interval_terms=True)
    kernel = keras_model.get_layer(INTERVAL_DENSE).get_weights()[0]
    assert kernel.shape == (12, 2 * REP.pitches - 1)
    weights = export_weights(keras_model, REP)
    model = LstmModel(config, weights)
    assert model.parameters == config.parameters
    inputs = _random_inputs(3, 40)
    expected = _softmax(np.asarray(keras_model(list(inputs), training=False), np.float64))
    np.testing.assert_allclose(_softmax(model.forward(inputs)), expected, atol=1e-4)
    np.testing.assert_allclose(_stepped(Mixture([model], [1.0]), inputs, [1]), expected, atol=1e-4)
    # Without the interval terms the same weights give another distribution.
    plain = LstmModel(replace(config, interval_terms=False),
                      {k: v for k, v in weights.items() if k != "interval_kernel"})
    assert not np.allclose(_softmax(plain.forward(inputs)), expected, atol=1e-3)
    # Models with and without them step in stacks of their own; two with them share one.
    _, other_keras = _random_keras_model(6, interval_terms=True)
    other = LstmModel(config, export_weights(other_keras, REP))
    mixture = Mixture([model, other, plain], [0.5, 0.3, 0.2])
    assert [len(group) for group in mixture.groups] == [2, 1]
    mixed = sum(w * _softmax(m.forward(inputs)) for w, m in zip((0.5, 0.3, 0.2), (model, other, plain),
                                                                strict=True))
    np.testing.assert_allclose(_stepped(mixture, inputs, [1, 1, 1]), mixed, atol=1e-4)
    # Weights without the terms for a config with them, or the other way round, are refused.
    with pytest.raises(ValueError, match="interval terms"):
        LstmModel(replace(config, interval_terms=False), weights)
    with pytest.raises(ValueError, match="interval terms"):
        LstmModel(config, {k: v for k, v in weights.items() if k != "interval_kernel"})
    index = config.interval_index()
    c4, c5, g4 = (FIRST_PITCH_ID + p - REP.low_pitch for p in (60, 72, 67))
    octave = REP.pitches - 1 + 12
    assert index[c4, c5] == index[g4, g4 + 12] == index[c4 + REP.pitches, c5] == octave
    assert index[c5, c4] == REP.pitches - 1 - 12
    none = 2 * REP.pitches - 1
    assert (index[[START, REST_ID, HOLD_ID]] == none).all() and (index[:, :FIRST_PITCH_ID] == none).all()
    reloaded = build_keras_model(config, training_dropout=False, rep=REP)
    load_weights(reloaded, weights)
    again = _softmax(np.asarray(reloaded(list(inputs), training=False), np.float64))
    np.testing.assert_allclose(again, expected, atol=1e-4)


def test_every_input_changes_the_distribution(untrained_models_dir: Path) -> None:
    model = LstmModel.load(untrained_models_dir / "alpha")
    base = _random_inputs(1, 20)
    reference = model.forward(base)
    for k in (1, 2, 3):  # position, bars left, control
        changed = list(base)
        changed[k] = (base[k] + 1) % np.array([12, 17, 4])[k - 1]
        assert not np.allclose(model.forward(tuple(changed)), reference)


def test_mixture_is_the_weighted_average_of_the_styles(untrained_models_dir: Path) -> None:
    models = [LstmModel.load(untrained_models_dir / s) for s in ("alpha", "beta", "gamma")]
    weights = [0.5, 0.3, 0.2]
    mixture = Mixture(models, weights)
    assert len(mixture.stacks) == 2  # alpha and beta step as one stack; gamma has another shape
    # Training-only settings do not split a stack.
    trained_apart = copy.copy(models[1])
    trained_apart.config = replace(models[1].config, dropout=0.3, pitch_class_sharing=True)
    assert len(Mixture([models[0], trained_apart], [0.5, 0.5]).stacks) == 1
    controls = [2, 3, 0]
    inputs = _random_inputs(2, 40, seed=1)
    expected = sum(
        w * _softmax(m.forward((*inputs[:3], np.full_like(inputs[0], c))))
        for w, m, c in zip(weights, models, controls, strict=True)
    )
    np.testing.assert_allclose(_stepped(mixture, inputs, controls), expected, atol=1e-5)


@pytest.fixture(scope="module")
def alpha(untrained_models_dir: Path) -> Mixture:
    return Mixture([LstmModel.load(untrained_models_dir / "alpha")], [1.0])


def _sample(mixture: Mixture, **kw) -> np.ndarray:
    kw = {"steps": 64, "steps_per_bar": 16, "candidates": 3, "controls": [2], "rng": np.random.default_rng(0),
          **kw}
    return sample(mixture, REP, **kw)


def test_same_seed_same_tokens(alpha: Mixture) -> None:
    def draw(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return _sample(alpha, rng=rng, temperature=0.9, top_p=0.9, cadence_from=48).tokens

    assert np.array_equal(draw(5), draw(5))
    assert not np.array_equal(draw(5), draw(6))


@pytest.mark.parametrize("primer", [[], [FIRST_PITCH_ID + 12, HOLD_ID, REST_ID, HOLD_ID]])
def test_samples_are_canonical_melody_tokens(alpha: Mixture, primer: list[int]) -> None:
    result = _sample(alpha, steps=200, candidates=8, temperature=2.0, top_p=1.0, primer=primer)
    assert result.tokens.shape == (8, 200)
    assert result.tokens.min() >= REST_ID
    like = Melody(())
    for row in result.tokens:
        full = primer + row.tolist()
        # No HOLD first, no REST in silence: decoding and re-encoding changes nothing.
        assert REP.event_ids(np.array(REP.decode(full, Undo(0), like).events)).tolist() == full
    assert np.all(result.log_likelihood < 0)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 2.0])
def test_the_first_bar_is_never_silent(alpha: Mixture, temperature: float) -> None:
    for seed in range(10):
        tokens = _sample(alpha, rng=np.random.default_rng(seed), candidates=8, temperature=temperature).tokens
        assert ((tokens[:, :16] >= FIRST_PITCH_ID).any(axis=1)).all()


@pytest.mark.parametrize(("first_onset_by", "expected"), [(None, 15), (12, 12), (0, 0), (500, 63)])
def test_a_silent_start_gets_a_note_at_first_onset_by(alpha: Mixture, monkeypatch,
                                                      first_onset_by: int | None, expected: int) -> None:
    step = alpha.step

    def hushed(*args):  # a model that would stay silent: a rest, then holding it
        probs = step(*args)
        probs[:] = 1e-6
        probs[:, REST_ID] = probs[:, HOLD_ID] = 0.5
        return probs

    monkeypatch.setattr(alpha, "step", hushed)
    tokens = _sample(alpha, candidates=8, first_onset_by=first_onset_by).tokens
    assert ((tokens >= FIRST_PITCH_ID).argmax(axis=1) == expected).all()


def test_a_note_struck_and_ended_is_no_silent_start(alpha: Mixture, monkeypatch) -> None:
    step = alpha.step
    calls = [0]

    def strike_then_rest(*args):  # a note first, then silence: nothing is forced later
        probs = step(*args)
        probs[:] = 1e-6
        if calls[0] == 0:  # the first draw (the START step's output)
            probs[:, FIRST_PITCH_ID + 12] = 1.0
        else:
            probs[:, REST_ID] = probs[:, HOLD_ID] = 0.5
        calls[0] += 1
        return probs

    monkeypatch.setattr(alpha, "step", strike_then_rest)
    tokens = _sample(alpha, candidates=4, first_onset_by=12).tokens
    assert (tokens[:, 0] == FIRST_PITCH_ID + 12).all()
    assert (tokens[:, 1:] < FIRST_PITCH_ID).all()


def _spans(rows: np.ndarray) -> list[int]:
    return [int(np.ptp(row[row >= FIRST_PITCH_ID])) for row in rows]


def test_a_span_keeps_every_candidate_within_it(alpha: Mixture) -> None:
    free = _sample(alpha, steps=200, candidates=8, temperature=2.0, top_p=1.0).tokens
    assert max(_spans(free)) > 5  # left alone, the untrained model wanders wider
    kept = _sample(alpha, steps=200, candidates=8, temperature=2.0, top_p=1.0, span=5).tokens
    assert max(_spans(kept)) <= 5 and min(_spans(kept)) > 0
    primer = [FIRST_PITCH_ID + 10, HOLD_ID, FIRST_PITCH_ID + 22, REST_ID]  # wider than the span itself
    after = _sample(alpha, steps=200, candidates=8, temperature=2.0, top_p=1.0, span=5, primer=primer).tokens
    played = after[after >= FIRST_PITCH_ID]
    assert played.min() >= FIRST_PITCH_ID + 10 and played.max() <= FIRST_PITCH_ID + 22
    assert len(np.unique(played)) > 3  # it still moves within the primer's range


def test_a_narrower_primer_counts_towards_the_span(alpha: Mixture) -> None:
    primer = [FIRST_PITCH_ID + 10, HOLD_ID, FIRST_PITCH_ID + 13, HOLD_ID]
    after = _sample(alpha, steps=200, candidates=8, temperature=2.0, top_p=1.0, span=5, primer=primer).tokens
    for row in after:
        played = np.concatenate([[FIRST_PITCH_ID + 10, FIRST_PITCH_ID + 13], row[row >= FIRST_PITCH_ID]])
        assert np.ptp(played) <= 5 and played.min() >= FIRST_PITCH_ID + 8


@pytest.mark.parametrize("span", [0, 2, 7])
def test_range_tables_match_the_rule_for_every_state_and_id(span: int) -> None:
    vocab = FIRST_PITCH_ID + 7
    after, in_reach = _range_tables(vocab, span)
    none = _range_of(np.array([REST_ID, HOLD_ID]), vocab)
    ranges = [None] + [(lo, hi) for lo in range(7) for hi in range(lo, 7)]
    for melody_range in ranges:
        state = none if melody_range is None else _range_of(FIRST_PITCH_ID + np.array(melody_range), vocab)
        for drawn in range(vocab):
            pitch = drawn - FIRST_PITCH_ID
            if pitch < 0:
                expected = melody_range
            else:
                expected = (pitch, pitch) if melody_range is None else \
                    (min(melody_range[0], pitch), max(melody_range[1], pitch))
            assert after[drawn, state] == (none if expected is None else
                                           _range_of(FIRST_PITCH_ID + np.array(expected), vocab))
        for pitch in range(7):
            if melody_range is None:
                allowed = True
            else:
                lo, hi = melody_range
                allowed = max(hi, pitch) - min(lo, pitch) <= max(span, hi - lo)
            assert in_reach[state, pitch] == allowed


def test_draw_keeps_the_onsets_when_the_span_cuts_pitches() -> None:
    row = np.zeros(FIRST_PITCH_ID + 4, np.float32)
    row[REST_ID], row[HOLD_ID] = 0.1, 0.2
    row[FIRST_PITCH_ID:] = [0.4, 0.0, 0.2, 0.1]
    reach = np.tile(np.array([0.0, 1.0, 1.0, 1.0], np.float32), (4000, 1))
    drawn = _draw(np.tile(row, (4000, 1)), 1.0, np.random.default_rng(0).random(4000), reach)
    assert FIRST_PITCH_ID not in set(drawn)  # out of reach
    counts = np.bincount(drawn, minlength=len(row)) / 4000
    np.testing.assert_allclose(counts[[REST_ID, HOLD_ID]], [0.1, 0.2], atol=0.03)  # onsets as often as uncut
    np.testing.assert_allclose(counts[FIRST_PITCH_ID + 2:], [0.7 * 2 / 3, 0.7 / 3], atol=0.03)


def test_low_temperature_with_masked_mass_draws_allowed_tokens(alpha: Mixture, monkeypatch) -> None:
    """Temperature on log-probabilities: at 0.1, weights of 1e-5 raised to the 10th power underflowed in
    float32 and the draw indexed past the row."""
    step = alpha.step

    def peaked(*args):
        probs = step(*args)
        probs[:] = 1e-5
        probs[:, HOLD_ID] = 1.0 - 1e-5 * (probs.shape[1] - 1)  # almost all mass where the start forbids it
        return probs

    monkeypatch.setattr(alpha, "step", peaked)
    tokens = _sample(alpha, steps=8, temperature=0.1).tokens
    assert tokens[:, 0].min() >= REST_ID and tokens[:, 0].max() < REP.vocab_size
    assert (tokens[:, 0] != HOLD_ID).all()


def test_tiny_top_p_starts_each_note_on_the_likeliest_pitch(alpha: Mixture,
                                                             untrained_models_dir: Path) -> None:
    steps = 48
    tokens = _sample(alpha, steps=steps, candidates=2, top_p=0.01).tokens
    model = LstmModel.load(untrained_models_dir / "alpha")
    inputs = np.stack([REP.sequence_inputs(np.concatenate([row, [2]]))[:-1] for row in tokens])
    left = np.tile(np.clip(2 - np.arange(steps) // 16, 0, 16), (2, 1))
    logits = model.forward((inputs, np.tile(np.arange(steps) % 16, (2, 1)), left, np.full((2, steps), 2)))
    onsets = tokens >= FIRST_PITCH_ID
    assert onsets.any() and not onsets.all()  # whether a note starts is still drawn
    likeliest = logits[..., FIRST_PITCH_ID:].argmax(axis=-1) + FIRST_PITCH_ID
    assert np.array_equal(tokens[onsets], likeliest[onsets])


def test_draw_cuts_the_pitches_to_their_nucleus_never_the_onsets() -> None:
    row = np.zeros(FIRST_PITCH_ID + 4, np.float32)
    row[REST_ID], row[HOLD_ID] = 0.1, 0.2
    row[FIRST_PITCH_ID:] = [0.4, 0.0, 0.2, 0.1]
    uniforms = np.random.default_rng(0).random(4000)

    def draw(top_p: float) -> np.ndarray:
        return _draw(np.tile(row, (4000, 1)), top_p, uniforms)

    assert set(draw(0.5)) == {REST_ID, HOLD_ID, FIRST_PITCH_ID}
    assert set(draw(0.8)) == {REST_ID, HOLD_ID, FIRST_PITCH_ID, FIRST_PITCH_ID + 2}
    assert abs((draw(0.5) >= FIRST_PITCH_ID).mean() - 0.7) < 0.03  # notes start as often as uncut
    counts = np.bincount(draw(1.0), minlength=len(row)) / 4000
    np.testing.assert_allclose(counts, row / row.sum(), atol=0.03)


def test_draw_stays_inside_the_row() -> None:
    """u * total can round up to the total: the draw is then the last id, never one past the row."""
    weights = np.zeros((2, FIRST_PITCH_ID + 2), np.float32)
    weights[0, [REST_ID, HOLD_ID]] = 0.25, 0.75
    weights[1, [HOLD_ID, FIRST_PITCH_ID]] = 0.5
    last = weights.shape[1] - 1
    assert _draw(weights.copy(), 1.0, np.array([1.0, 1.0])).tolist() == [last, last]
    assert _draw(weights.copy(), 0.9, np.array([0.0, 0.6])).tolist() == [REST_ID, FIRST_PITCH_ID]


def test_a_model_config_with_settings_this_composer_lacks_is_refused(tmp_path: Path) -> None:
    """A model made by a newer composer (a setting unknown here) is refused, not run as another model."""
    import json

    from composer.lstm import ModelConfig

    config = ModelConfig.for_representation(REP)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model": {**config.__dict__, "pitch_octave_terms": True}}))
    with pytest.raises(ValueError, match="pitch_octave_terms"):
        ModelConfig.load(path)
    path.write_text(json.dumps({"model": config.__dict__}))
    assert ModelConfig.load(path) == config
