"""A short-term model of the piece so far: tunes repeat themselves, bar for bar.

IDyOM (Pearce 2005) gets much of its gain from a short-term model trained on the piece being heard. This
one is built for the step grid and for the sampler's budget: for each lag of 1, 2, 4 and 8 bars it
tracks how many steps in a row the piece has just repeated what it played that lag earlier (the run),
and proposes the token played one lag ago. A lag's confidence grows with its run, ``1 - exp(-run /
scale)``; the proposals are averaged by confidence, and mixed into the model's next-step distribution
with weight ``weight x`` the best confidence:

    p(x) = (1 - lambda) p_model(x) + lambda p_repeat(x),   lambda = weight * max_lag confidence.

So a strain that starts again as it started before is carried on as before, while a new phrase, where no
lag has a run, is the model's alone. ``weight`` and ``scale`` are tuned per style on validation melodies
(``tune``) and saved with the model; the evaluation scores with it, the sampler mixes at
``SAMPLING_SHARE`` of the weight (same code).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

LAG_BARS = (1, 2, 4, 8)
#: Share of the tuned weight the sampler uses. Tuned weights fit real pieces, which stop repeating when
#: they move on; a sampled repeat instead feeds its own run. At the full weight 60 folk melodies repeated
#: more than real ones (MGEval mean overlap 0.84, 0.89 at half the weight; celtic 0.84 either way).
SAMPLING_SHARE = 0.5


@dataclass(frozen=True)
class RepetitionModel:
    #: Largest share of the next-step distribution given to repetition; 0 turns it off.
    weight: float = 0.0
    #: Steps of repetition after which a lag is ``1 - 1/e`` confident.
    scale: float = 8.0

    def to_config(self) -> dict:
        return asdict(self)

    @classmethod
    def from_config(cls, data: dict | None) -> RepetitionModel:
        return cls(float(data["weight"]), float(data["scale"])) if data else cls()

    # --- step by step (the sampler) -----------------------------------------------------------

    def start(self, history: np.ndarray, total_steps: int, steps_per_bar: int) -> RepetitionState:
        """State for candidates whose pieces so far are ``history (B, t)``, to run to ``total_steps``; it
        mixes at ``SAMPLING_SHARE`` of the weight."""
        model = RepetitionModel(self.weight * SAMPLING_SHARE, self.scale)
        return RepetitionState(model, history, total_steps, steps_per_bar)

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
        if self.weight <= 0:
            return log_probs
        proposed, confidence = self.proposals(ids, steps_per_bar)
        probs = np.exp(log_probs)
        return np.log(np.maximum(_mix(probs, proposed, confidence, self.weight), 1e-30))


class RepetitionState:
    """The runs of each lag for a batch of candidates, updated token by token, and each lag's proposal for
    the next step (the token one lag before it)."""

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
        #: Confidence of a run of ``r`` steps, ``r`` capped (the table reaches 1 well before).
        runs = np.minimum(np.arange(max(total_steps, t) + 1), _MAX_RUN)
        self.confidence = 1.0 - np.exp(-runs / model.scale)
        self.t = 0
        self.proposed = self.ids[:, self.pad - self.lags]
        for step in range(t):  # runs at the end of the history
            self.push(history[:, step])

    def mix(self, probs: np.ndarray) -> np.ndarray:
        """``probs (B, V)`` for the next step, mixed with repetition (in place when it is on). A lag that
        reaches before the piece has no run, so no confidence."""
        if self.model.weight <= 0:
            return probs
        return _mix(probs, self.proposed, self.confidence[self.runs], self.model.weight)

    def push(self, tokens: np.ndarray) -> None:
        """Record the tokens drawn for the current step: a lag whose proposal they are runs on a step,
        the others start again."""
        self.runs += 1
        self.runs *= self.proposed == tokens[:, None]
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
         scales: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0)) -> tuple[RepetitionModel, float]:
    """The weight and scale with the lowest mean NLL (nats per target) on teacher-forced sequences:
    ``step_log_probs[i] (T, V)`` of the model, ``targets[i] (T,)``. Returns the model and its NLL."""
    # ``_mix`` reduced to the targets' entries, so the grid costs no full distributions.
    picked = [lp[np.arange(len(y)), y] for lp, y in zip(step_log_probs, targets, strict=True)]
    count = sum(len(y) for y in targets)
    best: tuple[float, RepetitionModel] | None = None
    for scale in scales:
        probe = RepetitionModel(1.0, scale)
        parts = [probe.proposals(y, spb) for y, spb in zip(targets, steps_per_bar, strict=True)]
        for weight in weights:
            total = 0.0
            for p, y, (proposed, confidence) in zip(picked, targets, parts, strict=True):
                lam = weight * confidence.max(axis=1)
                norm = np.where(confidence.sum(axis=1) > 0, confidence.sum(axis=1), 1.0)
                repeat = (confidence * (proposed == y[:, None])).sum(axis=1) / norm
                total -= float(np.log(np.maximum((1 - lam) * np.exp(p) + lam * repeat, 1e-30)).sum())
            if best is None or total / count < best[0]:
                best = (total / count, RepetitionModel(weight, scale))
    assert best is not None
    return best[1], best[0]
