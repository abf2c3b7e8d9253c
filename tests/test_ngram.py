"""The n-gram baselines: the long-term model's dense distributions, the short-term model of the piece so
far, their entropy-weighted combination (IDyOM's LTM+STM), and Pearce's pitch cross-entropy."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from composer.ngram import (
    NGramModel,
    combine_log_probs,
    ltm_stm_log_probs,
    ltm_stm_nll,
    ngram_pitch_cross_entropy_bits,
    pitch_cross_entropy_bits,
    stm_log_probs,
    tune_ltm_stm,
)
from composer.representation import START

VOCAB = 12
END = 2
PITCHES = list(range(5, VOCAB))


def random_pieces(n: int, length: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.choice([*PITCHES, 3, 4]) for _ in range(length)] + [END] for _ in range(n)]


def motif_pieces(n: int, seed: int) -> list[list[int]]:
    """Each piece repeats a motif of its own (random notes) several times: only the piece knows it."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        motif = [rng.choice([*PITCHES, 3, 4]) for _ in range(6)]
        out.append(motif * 6 + [END])
    return out


def test_existing_api_and_dense_distribution_match_prob() -> None:
    train = random_pieces(40, 30, 0)
    full = NGramModel(5, VOCAB).fit(train)
    model = full.with_order(3, 0.6)
    assert model.order == 3 and model.discount == 0.6
    seq = random_pieces(1, 20, 1)[0]
    history = [START]
    logp = model.log_probs(seq)
    assert logp.shape == (len(seq), VOCAB)
    for i, token in enumerate(seq):
        dense = model.distribution(history)
        assert dense.sum() == pytest.approx(1.0, abs=1e-12)
        assert dense[token] == pytest.approx(model.prob(token, history), rel=1e-12)
        assert math.exp(logp[i, token]) == pytest.approx(model.prob(token, history), rel=1e-12)
        history.append(token)
    expected = -np.mean([lp[t] for lp, t in zip(logp, seq, strict=True)])
    assert model.nll([seq]) == pytest.approx(expected, rel=1e-12)


def test_stm_learns_only_the_piece_so_far() -> None:
    seq = [5, 6, 7, 5, 6, 7, 5, 6, 7, END]
    logp = stm_log_probs(seq, VOCAB, order=3)
    assert np.allclose(np.exp(logp).sum(axis=1), 1.0)
    assert np.allclose(logp[0], -math.log(VOCAB))  # nothing seen yet: uniform
    p = np.exp(logp)
    # After "5 6" has been followed by 7 once, 7 is the favourite there; before, it was not.
    assert p[5, 7] > 0.5 and p[5, 7] > p[2, 7] * 2
    # A token never seen in this piece keeps only the add-one share.
    assert p[-2, 11] < 0.05


@pytest.mark.parametrize("order", [1, 2, 4, 9])
def test_stm_equals_an_ngram_fitted_on_the_prefix(order: int) -> None:
    rng = random.Random(order)
    seq = ([rng.choice(PITCHES) for _ in range(5)] * 4 + [rng.choice(PITCHES) for _ in range(8)]) * 2 + [END]
    logp = stm_log_probs(seq, VOCAB, order, 0.6)
    for t in range(len(seq)):
        reference = NGramModel(order, VOCAB, 0.6).fit([seq[:t]]).distribution([START, *seq[:t]])
        assert np.allclose(np.exp(logp[t]), reference, rtol=1e-10, atol=0), t


def test_stm_lowers_nll_on_pieces_that_repeat_a_motif() -> None:
    ltm = NGramModel(4, VOCAB).fit(random_pieces(60, 40, 2) + motif_pieces(30, 3))
    test = motif_pieces(20, 4)
    alone = ltm.nll(test)
    combined = ltm_stm_nll(ltm, test, stm_order=4, bias=1.0)
    assert combined < 0.7 * alone
    # ...and costs little on pieces with nothing to repeat.
    plain = random_pieces(20, 36, 5)
    assert ltm_stm_nll(ltm, plain, stm_order=4, bias=1.0) < 1.1 * ltm.nll(plain)


def test_tuning_on_validation_picks_a_combination_that_helps() -> None:
    ltm = NGramModel(4, VOCAB).fit(random_pieces(60, 40, 6))
    validation = motif_pieces(10, 7)
    best = tune_ltm_stm(ltm, validation, orders=(2, 4), biases=(0.0, 2.0))
    assert set(best) == {"stm_order", "bias", "stm_weight", "method", "stm_discount", "validation_nll"}
    assert best["validation_nll"] < ltm.nll(validation)
    params = {k: v for k, v in best.items() if k != "validation_nll"}
    assert ltm_stm_nll(ltm, validation, **params) == pytest.approx(best["validation_nll"], rel=1e-5)
    # The tuner's shortcuts give what the full computation gives, for each combination.
    for method in ("arithmetic", "geometric"):
        one = tune_ltm_stm(ltm, validation, orders=(3,), biases=(1.0,), stm_weights=(0.5,), methods=(method,))
        assert one["method"] == method and one["stm_weight"] == 0.5
        direct = ltm_stm_nll(ltm, validation, stm_order=3, bias=1.0, stm_weight=0.5, method=method)
        assert direct == pytest.approx(one["validation_nll"], rel=1e-5)
    assert ltm_stm_nll(ltm, motif_pieces(10, 8), **params) < ltm.nll(motif_pieces(10, 8))


def test_combination_is_normalised_and_trusts_the_confident_model() -> None:
    uniform = np.full((1, 4), math.log(0.25))
    peaked = np.log(np.array([[0.97, 0.01, 0.01, 0.01]]))
    for method in ("geometric", "arithmetic"):
        mixed = combine_log_probs([uniform, peaked], bias=2.0, method=method)
        assert np.exp(mixed).sum() == pytest.approx(1.0)
        equal = combine_log_probs([uniform, peaked], bias=0.0, method=method)
        assert mixed[0, 0] > equal[0, 0]  # the low-entropy model weighs more with a bias
    # A small prior weight leaves the first model nearly alone.
    assert np.allclose(combine_log_probs([peaked, uniform], bias=1.0, prior=(1.0, 1e-6)), peaked, atol=1e-4)
    # Two equal models combine to themselves.
    assert np.allclose(combine_log_probs([peaked, peaked], bias=1.0), peaked)
    with pytest.raises(ValueError):
        combine_log_probs([uniform, peaked], method="median")
    ltm = NGramModel(3, VOCAB).fit(random_pieces(10, 20, 9))
    seq = motif_pieces(1, 10)[0]
    assert np.allclose(np.exp(ltm_stm_log_probs(ltm, seq)).sum(axis=1), 1.0)


def test_pitch_cross_entropy_counts_only_onsets_given_a_note_starts() -> None:
    # V = 6: ids 0-1 are not pitches, 2-5 are; all pitches equally likely given an onset: 2 bits,
    # however much probability the non-pitch tokens take.
    row = np.log(np.array([0.6, 0.2, 0.05, 0.05, 0.05, 0.05]))
    logp = np.stack([row, row, row])
    assert pitch_cross_entropy_bits(logp, np.array([2, 0, 5]), [2, 3, 4, 5]) == pytest.approx(2.0)
    skewed = np.log(np.array([0.5, 0.0 + 1e-300, 0.25, 0.125, 0.0625, 0.0625]))
    bits = pitch_cross_entropy_bits(np.stack([skewed, skewed]), np.array([2, 3]), [2, 3, 4, 5])
    assert bits == pytest.approx((1.0 + 2.0) / 2)
    # Padding weights drop steps; a batch shape (B, T, V) works.
    batch = np.stack([np.stack([skewed, skewed])] * 2)
    targets = np.array([[2, 3], [3, 0]])
    assert pitch_cross_entropy_bits(batch, targets, [2, 3, 4, 5], weights=np.array([[1, 1], [1, 0]])) \
        == pytest.approx((1.0 + 2.0 + 2.0) / 3)
    assert math.isnan(pitch_cross_entropy_bits(logp, np.array([0, 1, 0]), [2, 3, 4, 5]))


def test_ngram_pitch_cross_entropy_improves_with_the_stm_on_repeated_motifs() -> None:
    ltm = NGramModel(4, VOCAB).fit(random_pieces(60, 40, 11))
    test = motif_pieces(10, 12)
    alone = ngram_pitch_cross_entropy_bits(ltm, test, PITCHES)
    assert alone > math.log2(len(PITCHES)) - 0.3  # random pitches: no better than uniform
    assert ngram_pitch_cross_entropy_bits(ltm, test, PITCHES, stm_order=4, bias=2.0) < alone - 0.5
