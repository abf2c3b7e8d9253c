"""A short-term model of the piece so far: tunes repeat themselves, bar for bar.

IDyOM (Pearce 2005) gets much of its gain from a short-term model trained on the piece being heard. This
one is built for the step grid and for the sampler's budget: for each lag of 1, 2, 4 and 8 bars it
tracks how many steps in a row the piece has just repeated what it played that lag earlier (the run),
and proposes the token played one lag ago. A lag's confidence grows with its run, ``1 - exp(-run /
scale)``; the proposals are averaged by confidence, and mixed into the model's next-step distribution
with weight ``weight x`` the best confidence:

    p(x) = (1 - lambda) p_model(x) + lambda p_repeat(x),   lambda = weight * max_lag confidence.

So a strain that starts again as it started before is carried on as before, while a new phrase, where no
lag has a run, is the model's alone.

Phrases do not always repeat a whole number of bars later (a chorale's lines run to their fermatas, a
song's second strain may start a beat early), so a second mix follows, over every earlier position: the
*match* of position ``j`` is how many steps before ``j`` equal the steps just played (the longest common
suffix of the piece so far and the piece before ``j``), and ``j`` proposes the token played there. Only
matches of at least ``match_min`` steps count, with confidence ``1 - exp(-match / match_scale)``; the
proposals are averaged by confidence to the fourth power (the longest matches speak), and mixed in with
``match_weight x`` the best confidence. It is the long-context end of IDyOM's short-term model (an
n-gram of the piece so far): on the classical validation melodies it found as much as that model's
order-64 version combined with the LSTM (pitch bits 2.14 -> 2.02 on the test melodies, against 2.02),
at a cost the sampler can pay (one vector operation over the piece per step).

The five numbers are tuned per style on validation melodies (``tune``) and saved with the model; the
evaluation scores with them over whole sequences (``mix_sequence``), the sampler step by step
(``RepetitionState``, the bar lags through the same ``_mix``, the matches through its own sparse sums)
at ``SAMPLING_SHARE`` of the weights; a test holds the two to the same numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

LAG_BARS = (1, 2, 4, 8)
#: Share of the tuned weight the sampler uses. Tuned weights fit real pieces, which stop repeating when
#: they move on; a sampled repeat instead feeds its own run. At the full weight 60 folk melodies repeated
#: more than real ones (MGEval mean overlap 0.84, 0.89 at half the weight; celtic 0.84 either way).
SAMPLING_SHARE = 0.5
#: Matches' proposals are averaged by confidence to this power: the longest matches dominate.
MATCH_POWER = 4


@dataclass(frozen=True)
class RepetitionModel:
    #: Largest share of the next-step distribution given to repetition; 0 turns it off.
    weight: float = 0.0
    #: Steps of repetition after which a lag is ``1 - 1/e`` confident.
    scale: float = 8.0
    #: Largest share given to matches at any earlier position; 0 turns them off.
    match_weight: float = 0.0
    #: Steps of match after which a position is ``1 - 1/e`` confident.
    match_scale: float = 32.0
    #: Shortest match that proposes anything.
    match_min: int = 12

    def to_config(self) -> dict:
        return asdict(self)

    @classmethod
    def from_config(cls, data: dict | None) -> RepetitionModel:
        """From ``to_config``'s dict; a config written before matches existed has them off."""
        off = cls()
        if not data:
            return off
        return cls(float(data["weight"]), float(data["scale"]),
                   float(data.get("match_weight", off.match_weight)),
                   float(data.get("match_scale", off.match_scale)), int(data.get("match_min", off.match_min)))

    def sampling(self) -> RepetitionModel:
        """The model the sampler mixes: both weights at ``SAMPLING_SHARE``."""
        return replace(self, weight=self.weight * SAMPLING_SHARE,
                       match_weight=self.match_weight * SAMPLING_SHARE)

    def match_confidence(self, matches: np.ndarray) -> np.ndarray:
        """Confidence of matches of the given lengths (0 below ``match_min``)."""
        capped = np.minimum(matches, _MAX_RUN)
        return np.where(capped >= self.match_min, 1.0 - np.exp(-capped / self.match_scale), 0.0)

    def match_proposals(self, matches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For ``match_lengths``' matrix ``(T, T)``: each earlier position's share of each step's proposal
        (rows sum to 1, or to 0 where no match is long enough) and each step's best confidence ``(T,)``."""
        confidence = self.match_confidence(matches)
        shares = confidence ** MATCH_POWER
        shares /= np.maximum(shares.sum(axis=1, keepdims=True), 1e-300)
        return shares, confidence.max(axis=1)

    # --- step by step (the sampler) -----------------------------------------------------------

    def start(self, history: np.ndarray, total_steps: int, steps_per_bar: int) -> RepetitionState:
        """State for candidates whose pieces so far are ``history (B, t)``, to run to ``total_steps``; it
        mixes at ``SAMPLING_SHARE`` of the weights."""
        return RepetitionState(self.sampling(), history, total_steps, steps_per_bar)

    # --- whole sequences (evaluation) ---------------------------------------------------------

    def proposals(self, ids: np.ndarray, steps_per_bar: int) -> tuple[np.ndarray, np.ndarray]:
        """For target ids ``ids (T,)`` (step ``t`` predicts ``ids[t]``): per step and lag the proposed token
        (``-1`` where the lag reaches before the piece) and the lag's confidence, ``(T, L)`` each."""
        n = len(ids)
        lags = np.array(LAG_BARS) * steps_per_bar
        proposed = np.full((n, len(lags)), -1, np.int64)
        confidence = np.zeros((n, len(lags)))
        for k, lag in enumerate(lags):
            if lag >= n:
                continue
            proposed[lag:, k] = ids[:-lag]
            same = np.zeros(n, bool)  # same[t]: ids[t] == ids[t - lag]
            same[lag:] = ids[lag:] == ids[:-lag]
            run = np.zeros(n)
            count = 0
            for t in range(lag + 1, n):  # run before step t: repeats ending at t - 1
                count = count + 1 if same[t - 1] else 0
                run[t] = count
            confidence[:, k] = np.where(proposed[:, k] >= 0, 1.0 - np.exp(-run / self.scale), 0.0)
        return proposed, confidence

    def mix_sequence(self, log_probs: np.ndarray, ids: np.ndarray, steps_per_bar: int) -> np.ndarray:
        """Log-probabilities ``(T, V)`` of the model mixed with repetition, for target ids ``ids (T,)``."""
        if self.weight <= 0 and self.match_weight <= 0:
            return log_probs
        probs = np.exp(log_probs)
        if self.weight > 0:
            proposed, confidence = self.proposals(ids, steps_per_bar)
            probs = _mix(probs, proposed, confidence, self.weight)
        if self.match_weight > 0:
            shares, best = self.match_proposals(match_lengths(ids))
            lam = (self.match_weight * best)[:, None]
            probs = (1.0 - lam) * probs + lam * (shares @ np.eye(probs.shape[1])[ids])
        return np.log(np.maximum(probs, 1e-30))


def match_lengths(ids: np.ndarray) -> np.ndarray:
    """``m (T, T)``: ``m[t, j]`` (``j < t``) is how many steps before step ``t`` equal the steps before step
    ``j``, the longest common suffix of ``ids[:t]`` and ``ids[:j]``; 0 elsewhere."""
    n = len(ids)
    m = np.zeros((n, n), np.int32)
    for t in range(2, n):
        m[t, 1:t] = (m[t - 1, : t - 1] + 1) * (ids[: t - 1] == ids[t - 1])
    return m


class RepetitionState:
    """The runs of each lag for a batch of candidates, updated token by token, and each lag's proposal for
    the next step (the token one lag before it); and each earlier position's match (``match_lengths``)."""

    def __init__(self, model: RepetitionModel, history: np.ndarray, total_steps: int,
                 steps_per_bar: int) -> None:
        self.model = model
        batch, t = history.shape
        self.lags = np.array(LAG_BARS) * steps_per_bar
        #: The piece so far, after ``pad`` columns of -1: a lag reaching before the piece proposes -1,
        #: which no token repeats.
        self.pad = int(self.lags.max())
        self.ids = np.full((batch, self.pad + max(total_steps, t)), -1, np.int64)
        self.runs = np.zeros((batch, len(self.lags)), np.int64)
        #: Confidence of a run (or match) of ``r`` steps, ``r`` capped at ``_MAX_RUN`` (a lag's confidence
        #: is 1 well before; ``match_confidence`` caps a match there too: at scale 64 it is 0.98).
        runs = np.minimum(np.arange(max(total_steps, t) + 1), _MAX_RUN)
        self.confidence = 1.0 - np.exp(-runs / model.scale)
        self.t = 0
        self.proposed = self.ids[:, self.pad - self.lags]
        #: ``matches[:, j]``: the match of position ``j`` (see ``match_lengths``) before the next step.
        self.matches = np.zeros((batch, max(total_steps, t) + 1), np.int64)
        self.match_table = model.match_confidence(runs)
        self.match_shares = self.match_table ** MATCH_POWER
        #: Each candidate's longest match, and the longest of all.
        self.longest = np.zeros(batch, np.int64)
        self.longest_any = 0
        for step in range(t):  # runs at the end of the history
            self.push(history[:, step])

    def mix(self, probs: np.ndarray) -> np.ndarray:
        """``probs (B, V)`` for the next step, mixed with repetition (in place when it is on). A lag that
        reaches before the piece has no run, so no confidence."""
        if self.model.weight > 0:
            probs = _mix(probs, self.proposed, self.confidence[self.runs], self.model.weight)
        if self.model.match_weight > 0:
            probs = self._mix_matches(probs)
        return probs

    def _mix_matches(self, probs: np.ndarray) -> np.ndarray:
        if self.longest_any < self.model.match_min:
            return probs
        matches = self.matches[:, : self.t]
        rows, cols = np.nonzero(matches >= self.model.match_min)
        shares = self.match_shares[matches[rows, cols]]  # the tables reach the longest piece
        batch, vocab = probs.shape
        repeat = np.bincount(rows * vocab + self.ids[rows, self.pad + cols], shares, batch * vocab)
        repeat = repeat.reshape(batch, vocab)
        # Confidence grows with the match, so the longest match gives the best confidence.
        lam = self.model.match_weight * self.match_table[self.longest]
        probs *= (1.0 - lam).astype(probs.dtype)[:, None]
        share = lam / np.maximum(np.add.reduce(repeat, axis=1), 1e-300)
        probs += (repeat * share[:, None]).astype(probs.dtype)
        return probs

    def push(self, tokens: np.ndarray) -> None:
        """Record the tokens drawn for the current step: a lag whose proposal they are runs on a step,
        the others start again; so does each earlier position's match."""
        self.runs += 1
        self.runs *= self.proposed == tokens[:, None]
        if self.model.match_weight > 0 and self.t:
            t = self.t
            grown = self.matches[:, :t] + 1
            grown *= self.ids[:, self.pad : self.pad + t] == tokens[:, None]
            self.matches[:, 1 : t + 1] = grown
            self.longest = grown.max(axis=1)
            self.longest_any = int(self.longest.max())
        self.ids[:, self.pad + self.t] = tokens
        self.t += 1
        self.proposed = self.ids[:, self.pad + self.t - self.lags]


#: A run's confidence grows no further after this many steps.
_MAX_RUN = 255


def _mix(probs: np.ndarray, proposed: np.ndarray, confidence: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - lambda) probs + lambda p_repeat`` row by row, in place; ``proposed``/``confidence`` are
    ``(N, L)``, a proposal of confidence 0 (a lag before the piece: any id) counts for nothing."""
    best = np.maximum.reduce(confidence, axis=1)
    if not best.any():
        return probs
    lam = weight * best
    shares = confidence * (lam / np.maximum(np.add.reduce(confidence, axis=1), 1e-12))[:, None]
    n, vocab = probs.shape
    flat = np.maximum(proposed, 0) + np.arange(0, n * vocab, vocab)[:, None]
    probs *= (1.0 - lam).astype(probs.dtype)[:, None]
    probs += np.bincount(flat.ravel(), shares.ravel(), probs.size).reshape(probs.shape).astype(probs.dtype)
    return probs


def tune(step_log_probs: list[np.ndarray], targets: list[np.ndarray], steps_per_bar: list[int],
         weights: tuple[float, ...] = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8),
         scales: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0),
         match_weights: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0),
         match_scales: tuple[float, ...] = (16.0, 32.0, 64.0),
         match_mins: tuple[int, ...] = (8, 12, 16, 24)) -> tuple[RepetitionModel, float]:
    """The weights, scales and shortest match with the lowest mean NLL (nats per target) on
    teacher-forced sequences: ``step_log_probs[i] (T, V)`` of the model, ``targets[i] (T,)``. The bar
    lags are tuned first, the matches on top of them. Returns the model and its NLL."""
    # The mixes reduced to the targets' entries, so the grid costs no full distributions.
    picked = [np.exp(lp[np.arange(len(y)), y]) for lp, y in zip(step_log_probs, targets, strict=True)]
    count = sum(len(y) for y in targets)
    best: tuple[float, RepetitionModel] | None = None
    for scale in scales:
        probe = RepetitionModel(1.0, scale)
        parts = [probe.proposals(y, spb) for y, spb in zip(targets, steps_per_bar, strict=True)]
        for weight in weights:
            total = 0.0
            for p, y, (proposed, confidence) in zip(picked, targets, parts, strict=True):
                mixed = _picked_mix(p, y, proposed, confidence, weight)
                total -= float(np.log(np.maximum(mixed, 1e-30)).sum())
            if best is None or total / count < best[0]:
                best = (total / count, RepetitionModel(weight, scale))
    assert best is not None
    lags = best[1]
    if lags.weight > 0:
        picked = [_picked_mix(p, y, *lags.proposals(y, spb), lags.weight)
                  for p, y, spb in zip(picked, targets, steps_per_bar, strict=True)]
    # Per sequence once: every (scale, shortest) pair's best confidence and repeat probability of the target.
    grid = [(scale, shortest) for scale in match_scales for shortest in match_mins]
    totals = np.zeros((len(grid), len(match_weights)))
    weights_arr = np.array(match_weights)[None, :]
    for p, y in zip(picked, targets, strict=True):
        matches = match_lengths(y)
        same = y[None, :] == y[:, None]
        for g, (scale, shortest) in enumerate(grid):
            probe = RepetitionModel(match_scale=scale, match_min=shortest)
            shares, best_confidence = probe.match_proposals(matches)
            repeat = (shares * same).sum(axis=1)
            lam = best_confidence[:, None] * weights_arr
            mixed = (1.0 - lam) * p[:, None] + lam * repeat[:, None]
            totals[g] -= np.log(np.maximum(mixed, 1e-30)).sum(axis=0)
    g, w = np.unravel_index(np.argmin(totals), totals.shape)
    if totals[g, w] / count < best[0]:
        scale, shortest = grid[g]
        best = (float(totals[g, w] / count), replace(lags, match_weight=float(match_weights[w]),
                                                      match_scale=scale, match_min=int(shortest)))
    return best[1], best[0]


def _picked_mix(p: np.ndarray, y: np.ndarray, proposed: np.ndarray, confidence: np.ndarray,
                weight: float) -> np.ndarray:
    """The bar lags' mix at the targets only: ``p (T,)`` the model's probability of each target."""
    lam = weight * confidence.max(axis=1)
    norm = np.where(confidence.sum(axis=1) > 0, confidence.sum(axis=1), 1.0)
    repeat = (confidence * (proposed == y[:, None])).sum(axis=1) / norm
    return (1 - lam) * p + lam * repeat
