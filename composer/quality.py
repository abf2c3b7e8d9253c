"""Does it sound like its style? Measures of generated melodies beside real ones (issue 9).

- ``melody_vector``: a fixed-length vector of simple melody features.
- ``style_recognition``: a style classifier trained on real melodies of every style; how often real
  held-out melodies and generated ones are recognised as their own style.
- ``real_vs_generated``: how well a classifier tells generated melodies from real ones (0.5 is chance).
- ``ending_and_opening``: how many melodies end on the tonic on a strong beat, and how many open with
  more than a beat of rest.

The classifiers are multinomial logistic regression on standardised features, written here in numpy
(no scikit-learn); nothing here is imported when serving. Compare melodies of the same length (e.g.
16-bar windows, cut by the caller) and in the same key policy (both written keys, or both moved to C:
the mean pitch is a feature).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from composer.keys import estimate_keys
from composer.melody import Melody

#: Signed intervals -MAX..+MAX semitones, then one class each for wider leaps down and up.
MAX_INTERVAL = 12
#: Note-length classes in steps (16ths): 1, 2, 3, 4, 5-6, 7-8, 9-12, 13-16, 17-24, longer.
NOTE_LENGTH_EDGES = np.array([1, 2, 3, 4, 5, 7, 9, 13, 17, 25])
#: Bar lengths in steps with a metre class of their own (2/4, 3/4 and 6/8, 4/4, 6/4 and 12/8, 4/2).
BAR_STEPS = (8, 12, 16, 24, 32)
#: Onset classes: bar line, other strong beat, other beat, half a beat, anywhere else.
ONSET_CLASSES = 5

_SCALARS = ("pitch_range", "mean_pitch", "pitch_std", "rest_share", "notes_per_bar", "mean_abs_interval",
            "leading_rest_bars", "pitch_class_entropy", "repeated_notes")
VECTOR_SIZE = (12 + 1 + 2 * MAX_INTERVAL + 3 + len(NOTE_LENGTH_EDGES) + ONSET_CLASSES + len(BAR_STEPS) + 2
               + len(_SCALARS))
#: A name for each column of ``melody_matrix`` (pitch classes from the tonic, "int-13" for any leap down
#: past an octave, note lengths as "at least N steps", onset and metre classes, then the scalars).
FEATURE_NAMES = (
    *(f"pc{i}" for i in range(12)), "minor",
    *(f"int{i}" for i in range(-MAX_INTERVAL - 1, MAX_INTERVAL + 2)),
    *(f"len>={e}" for e in NOTE_LENGTH_EDGES),
    "on_bar", "on_strong", "on_beat", "on_half", "on_other",
    *(f"bar{b}" for b in BAR_STEPS), "bar_other", "compound",
    *_SCALARS,
)
assert len(FEATURE_NAMES) == VECTOR_SIZE


def _onset_class(position: int, melody: Melody, strong: tuple[int, ...]) -> int:
    beat = melody.beat_steps
    if position == 0:
        return 0
    if position in strong:
        return 1
    if position % beat == 0:
        return 2
    return 3 if position % melody.half_beat_steps == 0 else 4


def _normalised(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts.astype(float)


def melody_vector(melody: Melody) -> np.ndarray:
    """Simple features of one melody as a vector of ``VECTOR_SIZE`` floats (all zeros for no notes):

    pitch-class histogram relative to the estimated tonic (Krumhansl-Kessler, weighted by duration),
    mode (1 for minor), histogram of signed intervals (-12..+12 and wider leaps down / up), of note
    lengths (``NOTE_LENGTH_EDGES``), of onset positions (bar line, other strong beat, other beat, half
    beat, other), metre (one-hot steps per bar in ``BAR_STEPS`` or other, compound flag), and pitch range,
    mean pitch, pitch spread, share of silent steps, notes per bar, mean absolute interval, leading rest
    in bars, pitch-class entropy and share of repeated notes.
    """
    notes = melody.notes()
    if not notes:
        return np.zeros(VECTOR_SIZE)
    pitches = np.array([p for p, _, _ in notes])
    starts = np.array([s for _, s, _ in notes])
    lengths = np.array([e - s for _, s, e in notes])
    (tonic,), (minor,) = estimate_keys(np.array([melody.events], dtype=int))
    pc_hist = _normalised(np.bincount((pitches - tonic) % 12, weights=lengths, minlength=12))
    intervals = np.diff(pitches)
    interval_class = np.clip(intervals, -MAX_INTERVAL - 1, MAX_INTERVAL + 1) + MAX_INTERVAL + 1
    interval_hist = _normalised(np.bincount(interval_class, minlength=2 * MAX_INTERVAL + 3).astype(float))
    length_class = np.searchsorted(NOTE_LENGTH_EDGES, lengths, "right") - 1
    length_hist = _normalised(np.bincount(length_class, minlength=len(NOTE_LENGTH_EDGES)).astype(float))
    spb = melody.steps_per_bar
    strong = melody.strong_positions
    onset_hist = _normalised(np.bincount([_onset_class(int(s) % spb, melody, strong) for s in starts],
                                         minlength=ONSET_CLASSES).astype(float))
    metre = np.zeros(len(BAR_STEPS) + 2)
    metre[BAR_STEPS.index(spb) if spb in BAR_STEPS else len(BAR_STEPS)] = 1.0
    metre[-1] = float(melody.beat_steps == 6)
    sounding = int(lengths.sum())
    nonzero = pc_hist[pc_hist > 0]
    bars = max(melody.n_bars, 1e-9)
    scalars = np.array([
        float(np.ptp(pitches)) / 12.0,
        (float(pitches.mean()) - 66.0) / 12.0,
        float(pitches.std()) / 12.0,
        1.0 - sounding / max(melody.n_steps, 1),
        len(notes) / bars / 8.0,
        float(np.abs(intervals).mean()) / 12.0 if len(intervals) else 0.0,
        melody.leading_rest_steps / spb,
        float(-(nonzero * np.log2(nonzero)).sum()) / np.log2(12),
        float((intervals == 0).mean()) if len(intervals) else 0.0,
    ])
    return np.concatenate([pc_hist, [float(minor)], interval_hist, length_hist, onset_hist, metre, scalars])


def melody_matrix(melodies: Sequence[Melody]) -> np.ndarray:
    """``melody_vector`` of each melody, ``(N, VECTOR_SIZE)``."""
    return np.stack([melody_vector(m) for m in melodies]) if melodies else np.zeros((0, VECTOR_SIZE))


class SoftmaxClassifier:
    """Multinomial logistic regression with an L2 penalty on standardised features, fitted by Nesterov's
    accelerated gradient with a step from a bound on the loss's curvature (deterministic)."""

    def __init__(self, l2: float = 0.05, iterations: int = 400) -> None:
        self.l2, self.iterations = l2, iterations

    def _design(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.scale
        return np.hstack([z, np.ones((len(z), 1))])

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int | None = None,
            sample_weight: np.ndarray | None = None) -> SoftmaxClassifier:
        x, y = np.asarray(x, float), np.asarray(y, int)
        k = int(n_classes or y.max() + 1)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
        w = w / w.sum()
        self.mean = (w[:, None] * x).sum(axis=0)
        spread = np.sqrt((w[:, None] * (x - self.mean) ** 2).sum(axis=0))
        self.scale = np.where(spread > 1e-9, spread, 1.0)
        a = self._design(x)
        onehot = np.eye(k)[y]
        penalty = np.ones(a.shape[1])
        penalty[-1] = 0.0  # no penalty on the bias
        curvature = 0.5 * np.linalg.eigvalsh((a * w[:, None]).T @ a)[-1] + self.l2
        step = 1.0 / curvature
        coef = np.zeros((a.shape[1], k))
        ahead, previous = coef.copy(), coef.copy()
        for t in range(1, self.iterations + 1):
            logits = a @ ahead
            logits -= logits.max(axis=1, keepdims=True)
            prob = np.exp(logits)
            prob /= prob.sum(axis=1, keepdims=True)
            grad = a.T @ ((prob - onehot) * w[:, None]) + self.l2 * penalty[:, None] * ahead
            coef = ahead - step * grad
            ahead = coef + (t - 1) / (t + 2) * (coef - previous)
            previous = coef
        self.coef = coef
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        logits = self._design(np.asarray(x, float)) @ self.coef
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        return prob / prob.sum(axis=1, keepdims=True)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x).argmax(axis=1)


def _balanced_weights(y: np.ndarray) -> np.ndarray:
    counts = np.bincount(y)
    return len(y) / (len(counts) * counts[y])


def _fold_of_groups(groups: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """A fold number per row, every group in one fold, groups dealt out in a random order."""
    unique, inverse = np.unique(groups, return_inverse=True)
    fold_of_group = np.empty(len(unique), int)
    fold_of_group[rng.permutation(len(unique))] = np.arange(len(unique)) % folds
    return fold_of_group[inverse]


def style_recognition(real: dict[str, list[Melody]], generated: dict[str, list[Melody]], seed: int = 0,
                      real_groups: dict[str, Sequence[int]] | None = None, folds: int = 5,
                      l2: float = 0.05) -> dict[str, dict]:
    """How often melodies are recognised as their own style by a classifier of real melodies.

    The classifier (``SoftmaxClassifier`` on ``melody_vector``, classes weighted equally whatever their
    size) learns every style of ``real``. ``"real"``: the share of real melodies recognised as their style
    when held out, by ``folds``-fold cross-validation (by piece: ``real_groups[style][i]`` names the piece
    melody ``i`` was cut from, else each melody is its own piece). ``"generated"``: the share of
    ``generated[style]`` recognised as ``style`` by the classifier trained on all real melodies (NaN for a
    style with none); ``"generated_as"``: where they went, style -> share.
    """
    styles = sorted(real)
    if len(styles) < 2:
        raise ValueError("style recognition needs at least two styles")
    x = melody_matrix([m for s in styles for m in real[s]])
    y = np.concatenate([np.full(len(real[s]), i) for i, s in enumerate(styles)])
    groups = np.concatenate([
        np.asarray(real_groups[s] if real_groups and s in real_groups else np.arange(len(real[s])), int)
        + 1_000_000 * i for i, s in enumerate(styles)])
    weights = _balanced_weights(y)
    fold = _fold_of_groups(groups, folds, np.random.default_rng(seed))
    held_out = np.empty(len(y), int)
    for f in range(folds):
        test = fold == f
        if not test.any():
            continue
        model = SoftmaxClassifier(l2).fit(x[~test], y[~test], len(styles), weights[~test])
        held_out[test] = model.predict(x[test])
    model = SoftmaxClassifier(l2).fit(x, y, len(styles), weights)
    out: dict[str, dict] = {}
    for i, style in enumerate(styles):
        rates: dict = {"real": float((held_out[y == i] == i).mean())}
        melodies = generated.get(style, [])
        if melodies:
            predicted = model.predict(melody_matrix(melodies))
            rates["generated"] = float((predicted == i).mean())
            rates["generated_as"] = {s: float((predicted == j).mean()) for j, s in enumerate(styles)
                                     if (predicted == j).any()}
        else:
            rates["generated"] = float("nan")
            rates["generated_as"] = {}
        out[style] = rates
    return out


def real_vs_generated(real: list[Melody], generated: list[Melody], seed: int = 0,
                      real_groups: Sequence[int] | None = None, folds: int = 5, l2: float = 0.05,
                      repeats: int = 5, generated_groups: Sequence[int] | None = None) -> float:
    """Cross-validated accuracy of a classifier telling ``generated`` from ``real`` melodies of one style
    (0.5 is chance, 1.0 tells every one). The larger set is subsampled (by ``seed``) to the size of the
    smaller, so the classes are balanced; folds keep each real piece (``real_groups``) in one fold, and
    each generated one (``generated_groups``, for windows of longer generated pieces). The
    mean over ``repeats`` draws of subsample and folds (with 30 melodies a side one draw varies by about
    +-5 points)."""
    n = min(len(real), len(generated))
    if n < folds:
        raise ValueError(f"need at least {folds} melodies of each kind, got {len(real)} and {len(generated)}")
    x_real, x_gen = melody_matrix(real), melody_matrix(generated)
    groups = np.asarray(real_groups, int) if real_groups is not None else np.arange(len(real))
    gen_groups = np.asarray(generated_groups, int) if generated_groups is not None else None
    if len(groups) != len(real) or (gen_groups is not None and len(gen_groups) != len(generated)):
        raise ValueError("one group per melody")
    rng = np.random.default_rng(seed)
    return float(np.mean([_real_vs_generated_once(x_real, x_gen, groups, gen_groups, n, folds, l2, rng)
                          for _ in range(repeats)]))


def _real_vs_generated_once(x_real: np.ndarray, x_gen: np.ndarray, groups: np.ndarray,
                            gen_groups: np.ndarray | None, n: int, folds: int, l2: float,
                            rng: np.random.Generator) -> float:
    pick_real = np.sort(rng.choice(len(x_real), n, replace=False))
    pick_gen = np.sort(rng.choice(len(x_gen), n, replace=False))
    x = np.concatenate([x_real[pick_real], x_gen[pick_gen]])
    y = np.concatenate([np.zeros(n, int), np.ones(n, int)])
    # The real folds are drawn first, as before generated groups existed: results without them reproduce.
    real_fold = _fold_of_groups(groups[pick_real], folds, rng)
    gen_fold = (rng.permutation(n) % folds if gen_groups is None
                else _fold_of_groups(gen_groups[pick_gen], folds, rng))
    fold = np.concatenate([real_fold, gen_fold])
    correct = 0
    for f in range(folds):
        test = fold == f
        train = ~test
        if not test.any() or len(np.unique(y[train])) < 2:
            continue
        model = SoftmaxClassifier(l2).fit(x[train], y[train], 2, _balanced_weights(y[train]))
        correct += int((model.predict(x[test]) == y[test]).sum())
    return correct / len(y)


def ends_on_tonic_strong(melody: Melody) -> tuple[bool, bool]:
    """Whether the last note is the tonic (pitch class of the Krumhansl-Kessler key estimate of the whole
    melody), and whether it starts on a strong beat (``Melody.strong_positions``)."""
    notes = melody.notes()
    if not notes:
        return False, False
    pitch, start, _ = notes[-1]
    (tonic,), _ = estimate_keys(np.array([melody.events], dtype=int))
    return pitch % 12 == int(tonic), start % melody.steps_per_bar in melody.strong_positions


def ending_and_opening(melodies: Sequence[Melody]) -> dict:
    """How melodies end and open, as shares of ``melodies`` (``"n"``: how many):

    - ``"tonic_strong_end"``: the last note is the tonic and starts on a strong beat
      (``Melody.strong_positions``: the bar line, and mid-bar in metres of an even number of beats), the
      tonic by the
      Krumhansl-Kessler estimate of the whole melody (``composer.keys.estimate_keys``);
    - ``"tonic_end"``: the last note is the tonic, on any beat; ``"strong_end"``: it starts on a strong
      beat, whatever its pitch;
    - ``"rest_open"``: more than one beat of silence before the first note (``Melody.leading_rest_steps``
      > ``Melody.beat_steps``; an anacrusis, a first note in the second half of the first bar, is no rest).
    """
    n = len(melodies)
    ends = [ends_on_tonic_strong(m) for m in melodies]
    share = (lambda count: count / n) if n else (lambda count: float("nan"))
    return {
        "n": n,
        "tonic_strong_end": share(sum(t and s for t, s in ends)),
        "tonic_end": share(sum(t for t, _ in ends)),
        "strong_end": share(sum(s for _, s in ends)),
        "rest_open": share(sum(m.leading_rest_steps > m.beat_steps for m in melodies)),
    }
