"""The baselines every model must beat: an interpolated absolute-discounting n-gram model (the long-term
model, LTM, trained on a corpus) and, IDyOM-style (Pearce 2005), the same model combined per step with a
short-term model (STM) trained on the piece so far.

How LTM and STM are combined (``combine_log_probs``): at every step each model gives a full distribution
over the vocabulary; model ``m`` gets the weight ``w_m = prior_m * (H_m / H_max) ** -bias``, where ``H_m``
is the entropy of its distribution, ``H_max = log V``, and ``prior`` is 1 for the LTM and ``stm_weight``
for the STM (a confident model counts more; ``bias = 0`` is a fixed mix). The combination is the
weighted arithmetic mean ``p(x) = sum_m w_m p_m(x) / sum w`` (the default: it did better than the
geometric one on the Bach and Essen validation sets), or the weighted geometric mean
``p(x) ∝ prod_m p_m(x) ** (w_m / sum w)`` renormalised over the vocabulary (IDyOM's choice in Pearce
2005). ``stm_weight = 1`` is IDyOM's scheme; a smaller one keeps an STM that has seen little (uniform at
the start of a piece, hence high entropy but still weight 1 / (1 + w_LTM)) from diluting a confident LTM
on the many ``HOLD`` steps. ``tune_ltm_stm`` picks the STM order, bias, STM weight and combination on
validation sequences. Defaults (STM order 32, bias 0.5, STM weight 0.5, arithmetic) are near what
validation chose on Bach chorales and Essen han: long STM contexts pay on a 16th-note grid, where a
repeated phrase is recognised only over a bar or more of tokens (order 4 -> 32: classical test NLL
0.670 -> 0.623, chinese 1.299 -> 1.214).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from composer.representation import START

#: Floor for relative entropies before they are raised to a negative power.
_MIN_RELATIVE_ENTROPY = 1e-3


class NGramModel:
    """Token n-gram with interpolated absolute discounting, backing off to an add-one unigram."""

    def __init__(self, order: int, vocab_size: int, discount: float = 0.75) -> None:
        if order < 1:
            raise ValueError("order must be at least 1")
        self.order = order
        self.vocab_size = vocab_size
        self.discount = discount
        # counts[k][context of length k] -> Counter of next tokens
        self.counts: list[dict[tuple[int, ...], Counter]] = [defaultdict(Counter) for _ in range(order)]
        self.totals: list[dict[tuple[int, ...], int]] = [defaultdict(int) for _ in range(order)]
        self._dense: dict[tuple[int, ...], np.ndarray] = {}

    def fit(self, sequences: list[list[int]]) -> NGramModel:
        """Count every target token of each sequence (which starts after an implicit START)."""
        for seq in sequences:
            history = [START]
            for token in seq:
                for k in range(self.order):
                    if k > len(history):
                        break
                    context = tuple(history[len(history) - k :]) if k else ()
                    self.counts[k][context][token] += 1
                    self.totals[k][context] += 1
                history.append(token)
        self._dense = {}
        return self

    def with_order(self, order: int, discount: float) -> NGramModel:
        """A view of the same counts truncated to a lower order, with another discount."""
        view = NGramModel(order, self.vocab_size, discount)
        view.counts, view.totals = self.counts[:order], self.totals[:order]
        return view

    def prob(self, token: int, history: list[int]) -> float:
        unigram_total = self.totals[0][()]
        p = (self.counts[0][()][token] + 1) / (unigram_total + self.vocab_size)
        for k in range(1, self.order):
            if k > len(history):
                break
            context = tuple(history[len(history) - k :])
            total = self.totals[k].get(context)
            if not total:
                break
            counter = self.counts[k][context]
            p = (max(counter[token] - self.discount, 0.0) + self.discount * len(counter) * p) / total
        return p

    def nll(self, sequences: list[list[int]]) -> float:
        """Mean negative log-likelihood per token (nats)."""
        total, count = 0.0, 0
        for seq in sequences:
            history = [START]
            for token in seq:
                total -= math.log(self.prob(token, history))
                count += 1
                history.append(token)
        return total / max(count, 1)

    def distribution(self, history: Sequence[int]) -> np.ndarray:
        """The whole next-token distribution ``(V,)`` after ``history`` (which starts with START):
        ``distribution(h)[t] == prob(t, h)``. Cached by context, so treat the result as read-only."""
        key = tuple(history[max(0, len(history) - self.order + 1) :]) if self.order > 1 else ()
        dense = self._dense.get(key)
        if dense is None:
            dense = self._dense[key] = self._compute_distribution(key)
        return dense

    def _compute_distribution(self, history: tuple[int, ...]) -> np.ndarray:
        p = _counts_vector(self.counts[0].get((), {}), self.vocab_size) + 1.0
        p /= self.totals[0].get((), 0) + self.vocab_size
        for k in range(1, self.order):
            if k > len(history):
                break
            context = history[len(history) - k :]
            total = self.totals[k].get(context)
            if not total:
                break
            counter = self.counts[k][context]
            p = (np.maximum(_counts_vector(counter, self.vocab_size) - self.discount, 0.0)
                 + self.discount * len(counter) * p) / total
        return p

    def log_probs(self, sequence: Sequence[int]) -> np.ndarray:
        """Natural-log next-token distributions ``(T, V)`` at each step of ``sequence`` (after START)."""
        history = [START, *sequence]
        width = self.order - 1
        out = np.empty((len(sequence), self.vocab_size))
        for i in range(len(sequence)):
            key = tuple(history[max(0, i + 1 - width) : i + 1]) if width else ()
            dense = self._dense.get(key)
            if dense is None:
                dense = self._dense[key] = self._compute_distribution(key)
            out[i] = dense
        return np.log(out)


def _counts_vector(counter: dict[int, int], size: int) -> np.ndarray:
    out = np.zeros(size)
    if counter:
        out[list(counter.keys())] = list(counter.values())
    return out


class _Node:
    """A context in the short-term model's suffix trie: the counts of the tokens that followed it, and
    its one-token-longer extensions keyed by the token before it."""

    __slots__ = ("children", "counts", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.children: dict[int, _Node] = {}


def stm_log_probs(sequence: Sequence[int], vocab_size: int, order: int = 32,
                  discount: float = 0.75) -> np.ndarray:
    """The short-term model's log next-token distributions ``(T, V)`` over one sequence.

    At step ``t`` the model has counted the tokens ``0 .. t-1`` of this sequence only (after an implicit
    START), with the smoothing of ``NGramModel``: interpolated absolute discounting over contexts of up to
    ``order - 1`` tokens, backing off to an add-one unigram over the piece so far (uniform at step 0);
    ``stm_log_probs(seq, V, n, d)[t]`` is ``log NGramModel(n, V, d).fit([seq[:t]]).distribution(...)``.
    Long orders are cheap (contexts live in a suffix trie and the interpolation is summed sparsely), and
    they pay: on 16th-note grids a repeated phrase needs contexts of a bar or more.
    """
    if order < 1:
        raise ValueError("order must be at least 1")
    root = _Node()
    unigram = np.zeros(vocab_size)
    history = [START]
    out = np.empty((len(sequence), vocab_size))
    for t, token in enumerate(sequence):
        n = len(history)
        depth = min(order - 1, n)
        path: list[_Node] = []
        node = root
        for k in range(1, depth + 1):
            child = node.children.get(history[n - k])
            if child is None:
                break
            path.append(child)
            node = child
        # p_K = a_K + b_K (a_{K-1} + b_{K-1} (... + b_1 p_0)), a_k sparse, b_k = d * types / total.
        scale = 1.0
        sparse: dict[int, float] = {}
        for node in reversed(path):
            total = node.total
            for tok, count in node.counts.items():
                if count > discount:
                    sparse[tok] = sparse.get(tok, 0.0) + scale * (count - discount) / total
            scale *= discount * len(node.counts) / total
        p = (unigram + 1.0) * (scale / (t + vocab_size))
        if sparse:
            p[list(sparse)] += list(sparse.values())
        out[t] = p
        # Learn the token just seen, in every context up to the order.
        unigram[token] += 1
        node = root
        for k in range(1, depth + 1):
            if k <= len(path):
                node = path[k - 1]
            else:
                child = _Node()
                node.children[history[n - k]] = child
                node = child
            node.counts[token] = node.counts.get(token, 0) + 1
            node.total += 1
        history.append(token)
    return np.log(out)


def _entropy(log_p: np.ndarray) -> np.ndarray:
    return -(np.exp(log_p) * log_p).sum(axis=-1)


METHODS = ("arithmetic", "geometric")


def combine_log_probs(log_prob_sets: Sequence[np.ndarray], bias: float = 1.0, method: str = "arithmetic",
                      prior: Sequence[float] | None = None) -> np.ndarray:
    """Combine several models' log distributions ``(T, V)`` per step, weighted by entropy (see the
    module docstring): ``method`` is ``"arithmetic"`` or ``"geometric"``; ``prior``: a weight per model
    (default all 1). Returns log probabilities ``(T, V)``."""
    if method not in METHODS:
        raise ValueError(f"unknown combination {method!r}")
    stacked = np.stack(log_prob_sets)  # (M, T, V)
    prior_arr = np.ones(len(stacked)) if prior is None else np.asarray(prior, dtype=float)
    relative = np.maximum(_entropy(stacked) / math.log(stacked.shape[-1]), _MIN_RELATIVE_ENTROPY)
    weights = prior_arr[:, None] * relative ** -bias
    weights /= weights.sum(axis=0, keepdims=True)
    if method == "geometric":
        mixed = (weights[..., None] * stacked).sum(axis=0)
        return mixed - np.logaddexp.reduce(mixed, axis=-1, keepdims=True)
    return np.log((weights[..., None] * np.exp(stacked)).sum(axis=0))


def ltm_stm_log_probs(ltm: NGramModel, sequence: Sequence[int], stm_order: int = 32,
                      stm_discount: float | None = None, bias: float = 0.5, method: str = "arithmetic",
                      stm_weight: float = 0.5) -> np.ndarray:
    """Log next-token distributions ``(T, V)`` of the LTM combined with an STM of the piece so far."""
    discount = ltm.discount if stm_discount is None else stm_discount
    return combine_log_probs([ltm.log_probs(sequence),
                              stm_log_probs(sequence, ltm.vocab_size, stm_order, discount)], bias, method,
                             (1.0, stm_weight))


def _picked(log_p: np.ndarray, sequence: Sequence[int]) -> np.ndarray:
    return log_p[np.arange(len(sequence)), np.asarray(sequence, dtype=int)]


def ltm_stm_nll(ltm: NGramModel, sequences: Iterable[Sequence[int]], stm_order: int = 32,
                stm_discount: float | None = None, bias: float = 0.5, method: str = "arithmetic",
                stm_weight: float = 0.5) -> float:
    """Mean negative log-likelihood per token (nats, END included) of LTM+STM over ``sequences`` (the
    target lists ``composer.dataset.token_sequences`` gives, as ``NGramModel.nll`` takes)."""
    total, count = 0.0, 0
    for seq in sequences:
        if not len(seq):
            continue
        log_p = ltm_stm_log_probs(ltm, seq, stm_order, stm_discount, bias, method, stm_weight)
        total -= float(_picked(log_p, seq).sum())
        count += len(seq)
    return total / max(count, 1)


def tune_ltm_stm(ltm: NGramModel, validation: list[list[int]], orders: Sequence[int] = (4, 8, 16, 32, 64),
                 biases: Sequence[float] = (0.0, 0.5, 1.0, 2.0),
                 stm_weights: Sequence[float] = (0.1, 0.25, 0.5, 1.0),
                 methods: Sequence[str] = METHODS, stm_discount: float | None = None,
                 max_tokens: int | None = 100_000) -> dict:
    """The STM order, entropy bias, STM weight and combination with the lowest validation NLL:
    ``{"stm_order", "bias", "stm_weight", "method", "stm_discount", "validation_nll"}``, ready to pass on
    as ``ltm_stm_nll(ltm, test, **{k: v for k, v in best.items() if k != "validation_nll"})``.

    Each LTM and STM distribution is computed once (the STM's once per order); an arithmetic mix needs
    only the targets' probabilities, a geometric one a normalisation over the vocabulary per step. Only
    the first sequences, until ``max_tokens`` tokens are reached, are used (None: all): Palestrina's 256k
    validation tokens took 90 s on the busy 2-core machine, mostly the STM walking 63-token contexts of
    held notes.
    """
    discount = ltm.discount if stm_discount is None else stm_discount
    seqs, used = [], 0
    for seq in validation:
        if max_tokens is not None and used >= max_tokens:
            break
        if len(seq):
            seqs.append(seq)
            used += len(seq)
    if not seqs:
        raise ValueError("no validation tokens")
    targets = np.concatenate([np.asarray(s, dtype=int) for s in seqs])
    rows = np.arange(len(targets))
    h_max = math.log(ltm.vocab_size)
    ltm_logs = np.concatenate([ltm.log_probs(s) for s in seqs]).astype(np.float32)
    ltm_picked = ltm_logs[rows, targets].astype(float)
    ltm_relative = np.maximum(_entropy(ltm_logs).astype(float) / h_max, _MIN_RELATIVE_ENTROPY)
    best: dict | None = None
    for order in orders:
        stm_logs = np.concatenate([stm_log_probs(s, ltm.vocab_size, order, discount) for s in seqs]
                                  ).astype(np.float32)
        stm_picked = stm_logs[rows, targets].astype(float)
        stm_relative = np.maximum(_entropy(stm_logs).astype(float) / h_max, _MIN_RELATIVE_ENTROPY)
        for bias in biases:
            ltm_w, stm_raw = ltm_relative ** -bias, stm_relative ** -bias
            for weight in stm_weights:
                w = weight * stm_raw / (ltm_w + weight * stm_raw)
                for method in methods:
                    if method == "arithmetic":
                        nll = -float(np.logaddexp(np.log1p(-w) + ltm_picked, np.log(w) + stm_picked).mean())
                    elif method == "geometric":
                        wf = w.astype(np.float32)[:, None]
                        mixed = (1 - wf) * ltm_logs + wf * stm_logs
                        top = mixed.max(axis=1, keepdims=True)
                        norm = (np.log(np.exp(mixed - top).sum(axis=1)) + top[:, 0]).astype(float)
                        nll = -float(((1 - w) * ltm_picked + w * stm_picked - norm).mean())
                    else:
                        raise ValueError(f"unknown combination {method!r}")
                    if best is None or nll < best["validation_nll"]:
                        best = {"stm_order": order, "bias": bias, "stm_weight": weight, "method": method,
                                "stm_discount": discount, "validation_nll": nll}
    assert best is not None, "no orders, biases, weights or methods to try"
    return best


def ngram_pitch_cross_entropy_bits(ltm: NGramModel, sequences: Iterable[Sequence[int]],
                                   pitch_ids: Sequence[int] | np.ndarray, stm_order: int | None = None,
                                   stm_discount: float | None = None, bias: float = 0.5,
                                   method: str = "arithmetic", stm_weight: float = 0.5) -> float:
    """Pearce's pitch cross-entropy (bits per note, see ``pitch_cross_entropy_bits``) of the LTM alone
    (``stm_order=None``) or of LTM+STM, over target sequences."""
    logs, targets = [], []
    for seq in sequences:
        if not len(seq):
            continue
        logs.append(ltm.log_probs(seq) if stm_order is None
                    else ltm_stm_log_probs(ltm, seq, stm_order, stm_discount, bias, method, stm_weight))
        targets.append(np.asarray(seq, dtype=int))
    if not logs:
        return float("nan")
    return pitch_cross_entropy_bits(np.concatenate(logs), np.concatenate(targets), pitch_ids)


def pitch_cross_entropy_bits(step_log_probs: np.ndarray, targets: np.ndarray,
                             pitch_ids: Sequence[int] | np.ndarray,
                             weights: np.ndarray | None = None) -> float:
    """Pitch cross-entropy in bits per note (Pearce 2005, IDyOM): at each step whose target is a pitch
    (a note onset), ``-log2(p(target) / sum of p over all pitch ids)``, the probability of the pitch given
    that a note starts there; the mean over those steps.

    ``step_log_probs``: natural-log next-token probabilities ``(..., V)`` (any leading shape, e.g.
    ``(T, V)`` for one sequence or ``(B, T, V)`` for a padded batch); ``targets``: the token ids ``(...)``;
    ``pitch_ids``: the ids that are pitches; ``weights`` (optional, ``(...)``): 0 for padding steps.
    NaN when no target is a pitch.
    """
    log_p = np.asarray(step_log_probs, dtype=float)
    targets = np.asarray(targets, dtype=int)
    pitch_ids = np.asarray(pitch_ids, dtype=int)
    mask = np.isin(targets, pitch_ids)
    if weights is not None:
        mask &= np.asarray(weights) > 0
    if not mask.any():
        return float("nan")
    rows, tgt = log_p[mask], targets[mask]
    picked = rows[np.arange(len(tgt)), tgt]
    on_pitches = np.logaddexp.reduce(rows[:, pitch_ids], axis=-1)
    return float((on_pitches - picked).mean() / math.log(2))
