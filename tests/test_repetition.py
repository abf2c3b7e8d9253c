"""The short-term repetition model: the same numbers step by step as over whole sequences; it helps where
tunes repeat and is tuned off where they do not."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from composer.lstm import LstmModel
from composer.repetition import SAMPLING_SHARE, RepetitionModel, match_lengths, tune
from composer.representation import FIRST_PITCH_ID, HOLD_ID, Representation
from composer.sampler import Mixture, sample

V = 42
SPB = 4


def _uniform(n: int) -> np.ndarray:
    return np.full((n, V), -np.log(V))


def test_step_by_step_equals_the_whole_sequence() -> None:
    rng = np.random.default_rng(0)
    bar = rng.integers(FIRST_PITCH_ID, V, SPB)
    phrase = rng.integers(FIRST_PITCH_ID, V, 7)  # comes back 7 steps and 10 steps later: no bar lag
    ids = np.concatenate([bar, bar, rng.integers(FIRST_PITCH_ID, V, SPB), bar, bar, bar, phrase, phrase,
                          bar[:3], phrase, phrase])
    for model in (RepetitionModel(0.6, 3.0), RepetitionModel(0.6, 3.0, 0.8, 4.0, 3),
                  RepetitionModel(0.0, 3.0, 0.9, 2.0, 2)):
        # The sampler mixes at SAMPLING_SHARE of the tuned weights.
        whole = model.sampling().mix_sequence(_uniform(len(ids)), ids, SPB)
        assert model.sampling().match_weight == model.match_weight * SAMPLING_SHARE
        batch = np.stack([ids, np.roll(ids, 5)])  # a second candidate beside it changes nothing
        state = model.start(batch[:, :3], len(ids), SPB)
        for t in range(3, len(ids)):
            stepped = state.mix(np.full((2, V), 1.0 / V))
            np.testing.assert_allclose(np.log(stepped[0]), whole[t], atol=1e-9)
            state.push(batch[:, t])


def test_match_lengths_are_the_common_suffixes() -> None:
    ids = np.array([5, 6, 7, 5, 6, 7, 5])
    m = match_lengths(ids)
    for t in range(len(ids)):
        for j in range(len(ids)):
            expected = 0
            while j < t and expected < j and ids[j - 1 - expected] == ids[t - 1 - expected]:
                expected += 1
            assert m[t, j] == expected, (t, j)


def test_a_phrase_repeated_off_the_bar_lines_is_expected_again() -> None:
    rng = np.random.default_rng(2)
    phrase = rng.integers(FIRST_PITCH_ID, V, 2 * SPB + 3)  # 11 steps: no lag of 1, 2, 4 or 8 bars
    ids = np.concatenate([phrase, rng.integers(FIRST_PITCH_ID, V, 6), phrase])  # 17 steps apart
    second = np.arange(len(ids) - len(phrase) + 6, len(ids))  # well into its second time
    lags_only = RepetitionModel(0.8, 2.0).mix_sequence(_uniform(len(ids)), ids, SPB)
    with_matches = RepetitionModel(0.8, 2.0, 0.9, 4.0, 4).mix_sequence(_uniform(len(ids)), ids, SPB)
    assert np.allclose(lags_only[second, ids[second]], -np.log(V))  # the bar lags see nothing
    assert (with_matches[second, ids[second]] > np.log(0.5)).all()


def test_a_repeated_bar_is_expected_again() -> None:
    bar = np.array([FIRST_PITCH_ID + 3, HOLD_ID, FIRST_PITCH_ID + 5, FIRST_PITCH_ID + 7])
    ids = np.tile(bar, 4)
    mixed = RepetitionModel(0.8, 2.0).mix_sequence(_uniform(len(ids)), ids, SPB)
    picked = mixed[np.arange(len(ids)), ids]
    assert np.allclose(picked[:5], -np.log(V))  # nothing to repeat yet
    assert picked[-1] > np.log(0.5)  # the fourth time round, the bar is expected
    assert RepetitionModel(0.0).mix_sequence(_uniform(4), ids[:4], SPB) is not None


def test_tuning_turns_it_on_for_repeating_tunes_and_off_for_random_ones() -> None:
    rng = np.random.default_rng(1)
    repeating = [np.tile(rng.integers(FIRST_PITCH_ID, V, 2 * SPB), 6) for _ in range(5)]
    random = [rng.integers(FIRST_PITCH_ID, V, 48) for _ in range(5)]
    odd = [np.tile(rng.integers(FIRST_PITCH_ID, V, 13), 4) for _ in range(5)]  # 13 steps: no bar lag
    on, nll_on = tune([_uniform(len(y)) for y in repeating], repeating, [SPB] * 5)
    off, _ = tune([_uniform(len(y)) for y in random], random, [SPB] * 5)
    matched, nll_matched = tune([_uniform(len(y)) for y in odd], odd, [SPB] * 5)
    assert on.weight >= 0.5 and nll_on < np.log(V) / 2
    assert off.weight <= 0.2 < on.weight and off.match_weight == 0
    assert matched.match_weight >= 0.5 and nll_matched < np.log(V) / 2
    assert RepetitionModel.from_config(on.to_config()) == on and RepetitionModel.from_config(None).weight == 0


def test_the_sampler_repeats_more_with_it(untrained_models_dir: Path) -> None:
    mixture = Mixture([LstmModel.load(untrained_models_dir / "alpha")], [1.0])

    def same_as_a_bar_before(repetition: RepetitionModel | None) -> float:
        tokens = sample(mixture, Representation(), steps=16 * 16, steps_per_bar=16, candidates=8,
                        rng=np.random.default_rng(3), controls=[2], repetition=repetition).tokens
        return float((tokens[:, 16:] == tokens[:, :-16]).mean())

    assert same_as_a_bar_before(RepetitionModel(1.0, 1.0)) > 1.5 * same_as_a_bar_before(None)


def test_the_sampler_continues_matches_with_them(untrained_models_dir: Path) -> None:
    mixture = Mixture([LstmModel.load(untrained_models_dir / "alpha")], [1.0])

    def continued(repetition: RepetitionModel | None) -> float:
        """Share of steps that play what followed the longest earlier match of at least 4 steps."""
        tokens = sample(mixture, Representation(), steps=12 * 16, steps_per_bar=16, candidates=8,
                        rng=np.random.default_rng(4), controls=[2], repetition=repetition).tokens
        hits = total = 0
        for row in tokens:
            m = match_lengths(row)
            for t in range(1, len(row)):
                j = int(m[t].argmax())
                if m[t, j] >= 4:
                    total += 1
                    hits += row[j] == row[t]
        return hits / max(total, 1)

    with_matches = continued(RepetitionModel(0.0, 1.0, 1.0, 2.0, 4))
    assert with_matches > 1.2 * continued(None) and with_matches > 0.5
