"""Fast sampling: the style LSTMs stepped one token at a time, state carried forward in place.

One ``StackedLstm`` steps ``S`` same-shaped style models over a batch of ``B`` sequences (the
candidates) with one batched matmul per layer. Gates are reordered to ``i, f, o, g`` and the
sigmoid gates' weights pre-scaled by 1/2, so one ``tanh`` over all four gates gives
``sigmoid(x) = (tanh(x/2) + 1) / 2`` for three of them and ``tanh`` for the fourth.
A ``Mixture`` holds one stack per model shape and mixes the styles' next-step distributions.

The step loop is bound by numpy's cost per call on these tiny arrays, not by arithmetic: buffers and
their views are made once, and what a drawn token is fed back as, what then sounds and what may come
next are looked up in tables made once per piece.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import threadpoolctl

from composer.keys import estimate_keys, stable_degrees
from composer.lstm import LstmModel, ModelConfig
from composer.repetition import RepetitionModel
from composer.representation import END, FIRST_PITCH_ID, HOLD_ID, REST_ID, START, Representation

#: The share of the pitches' probability a new note is drawn from, unless a style's config says otherwise
#: (``config.json["top_p"]``, from ``Style.top_p``) or a request asks for another.
DEFAULT_TOP_P = 0.95
MIN_TOP_P, MAX_TOP_P = 0.05, 1.0

#: Factor on the probability of the tonic, third and fifth as note onsets in the final bar.
CADENCE_BOOST = 3.0
#: Floor for probabilities before taking logs.
_TINY = 1e-30


def _gates_ifog(matrix: np.ndarray, units: int) -> np.ndarray:
    """Keras' gate order ``i, f, g, o`` -> ``i, f, o, g``, with the sigmoid gates halved."""
    i, f, g, o = (matrix[..., k * units : (k + 1) * units] for k in range(4))
    return np.concatenate([0.5 * i, 0.5 * f, 0.5 * o, g], axis=-1).astype(np.float32)


def _with_bias_row(kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return np.concatenate([kernel, bias[None, :]]).astype(np.float32)


class StackedLstm:
    """Several style models with the same shape, stepped together: arrays carry a leading style axis.

    Layer ``l`` reads one buffer ``[h of layer l-1 (layer 0: none), own h, 1]``; its kernel has the
    bias as the last row, and the dense layer reads the top layer's ``[h, 1]``. Layer 0's input
    projection is a row of the token table (per candidate) plus rows of the position, bars-left and
    control tables (one per style, shared by the candidates).
    """

    def __init__(self, models: Sequence[LstmModel]) -> None:
        config = models[0].config
        if any(m.config.stepped_shape != config.stepped_shape for m in models):
            raise ValueError("models of one stack must share their shape")
        u = self.units = config.units
        self.layers = config.layers
        self.vocab_size = config.vocab_size
        self.max_bars_left = config.bars_left - 1
        self.token_table, self.position_table, self.left_table, self.control_table = (
            np.stack([_gates_ifog(m.tables[k], u) for m in models]) for k in range(4)
        )
        zero_bias = np.zeros(4 * u, np.float32)
        self.kernels = [np.stack([_gates_ifog(_with_bias_row(m.recurrent0, zero_bias), u) for m in models])]
        self.kernels += [
            np.stack([_gates_ifog(_with_bias_row(m.fused[k], m.biases[k]), u) for m in models])
            for k in range(self.layers - 1)
        ]
        #: The dense layer reading ``[h, 1]``; with interval terms (``ModelConfig.interval_terms``, part of
        #: the shape: all of a stack or none) their kernel follows it as columns of its own (zero bias), so
        #: one matmul gives the logits and the interval terms, and ``interval_columns[input]`` says which of
        #: its outputs each target adds (``ModelConfig.interval_index`` past the logits).
        self.dense = np.stack([_with_bias_row(m.dense_kernel, m.dense_bias) for m in models])
        self.interval_columns: np.ndarray | None = None
        if config.interval_terms:
            intervals = np.stack([_with_bias_row(m.interval_kernel, np.zeros(m.interval_kernel.shape[1]))
                                  for m in models])
            self.dense = np.concatenate([self.dense, intervals], axis=-1)
            self.interval_columns = config.interval_index() + self.vocab_size
        self._styles = np.arange(len(models))

    @property
    def styles(self) -> int:
        return self.token_table.shape[0]

    def start(self, batch: int, controls: np.ndarray) -> LstmState:
        """A fresh state for ``batch`` sequences; ``controls[s]`` is style ``s``'s control id."""
        state = LstmState(self.styles, batch, self.units, self.layers, self.vocab_size, self.dense.shape[-1])
        state.control_rows = self.control_table[self._styles, np.asarray(controls)]
        return state

    def step(self, state: LstmState, tokens: np.ndarray, position: int, bars_left: int) -> np.ndarray:
        """Feed input ids ``tokens[B]`` for a step at bar position ``position`` with ``bars_left`` bars
        after its own; return logits ``(S, B, V)``; advance ``state``."""
        z = state.z
        np.add(self.position_table[:, position], self.left_table[:, min(bars_left, self.max_bars_left)],
               out=state.shared)
        state.shared += state.control_rows
        first = state.layers[0]
        for layer, kernel in zip(state.layers, self.kernels, strict=True):
            np.matmul(layer.inputs, kernel, out=z)
            if layer is first:
                z += self.token_table[:, tokens]
                z += state.shared_per_row
            state.advance(layer)
        np.matmul(state.layers[-1].top, self.dense, out=state.outputs)
        if self.interval_columns is not None:  # one fancy index: cheaper than take_along_axis per step
            state.logits += state.outputs[:, state.rows, self.interval_columns[tokens]]
        return state.logits


class _Layer:
    """One layer's buffers: ``inputs``, ``[h of the layer below (layer 0: none), own h, 1]``, and the cell;
    views of them: ``own`` h, ``top`` (``[own h, 1]``, what the dense layer reads) and ``above`` (where the
    layer above reads this one's h; None for the top layer)."""

    def __init__(self, inputs: np.ndarray, cell: np.ndarray, above: np.ndarray | None) -> None:
        units = cell.shape[-1]
        self.inputs, self.cell, self.above = inputs, cell, above
        self.own = inputs[..., -units - 1 : -1]
        self.top = inputs[..., -units - 1 :]


class LstmState:
    """Preallocated buffers of one stack: each layer's ``[input from below, own h, 1]`` and cell, and one
    step's gates, each a fixed view (no slicing per step)."""

    def __init__(self, styles: int, batch: int, units: int, layers: int, vocab: int, outputs: int) -> None:
        shape = (styles, batch)
        self.vocab, self.width = vocab, outputs
        inputs = [np.zeros((*shape, (units if k else 0) + units + 1), np.float32) for k in range(layers)]
        for buffer in inputs:
            buffer[..., -1] = 1.0
        self.control_rows = np.zeros((styles, 4 * units), np.float32)
        self.shared = np.empty_like(self.control_rows)
        self.shared_per_row = self.shared[:, None, :]
        self._build(inputs, [np.zeros((*shape, units), np.float32) for _ in range(layers)])

    def _build(self, inputs: list[np.ndarray], cells: list[np.ndarray]) -> None:
        styles, batch, u = cells[0].shape
        above = [buffer[..., :u] for buffer in inputs[1:]] + [None]
        self.layers = [_Layer(*parts) for parts in zip(inputs, cells, above, strict=True)]
        self.z = np.empty((styles, batch, 4 * u), np.float32)
        #: The activated gates, gate by gate (``tanh`` reads ``z`` so): with several candidates, each gate's
        #: rows are then contiguous, and the arithmetic on them costs a third of what it does on slices.
        self.gates = np.empty((styles, 4, batch, u), np.float32)
        self.z_by_gate = self.z.reshape(styles, batch, 4, u).transpose(0, 2, 1, 3)
        self.sigmoids = self.gates[:, :3]
        self.input_gate, self.forget_gate, self.output_gate, self.candidate = self.gates.transpose(1, 0, 2, 3)
        self.tmp = np.empty((styles, batch, u), np.float32)
        #: The dense layer's outputs: the logits, then the interval terms where the models have them.
        self.outputs = np.empty((styles, batch, self.width), np.float32)
        self.logits = self.outputs[..., : self.vocab]
        self.rows = np.arange(batch)[:, None]

    def advance(self, layer: _Layer) -> None:
        """New cell and h of ``layer`` from its gates' pre-activations in ``z``."""
        np.tanh(self.z_by_gate, out=self.gates)
        self.sigmoids *= 0.5  # (tanh(x / 2) + 1) / 2; the kernels give x / 2
        self.sigmoids += 0.5
        layer.cell *= self.forget_gate
        np.multiply(self.input_gate, self.candidate, out=self.tmp)
        layer.cell += self.tmp
        np.tanh(layer.cell, out=self.tmp)
        np.multiply(self.output_gate, self.tmp, out=layer.own)
        if layer.above is not None:
            layer.above[...] = layer.own

    def select(self, rows: np.ndarray) -> None:
        """Keep (or repeat) batch rows ``rows``, e.g. to fan one warmed-up state out to candidates."""
        self._build([np.ascontiguousarray(layer.inputs[:, rows]) for layer in self.layers],
                    [np.ascontiguousarray(layer.cell[:, rows]) for layer in self.layers])


class Mixture:
    """The weighted mix of style models' next-step distributions; one stack per model shape."""

    def __init__(self, models: Sequence[LstmModel], weights: Sequence[float]) -> None:
        if len(models) != len(weights) or not models:
            raise ValueError("one weight per model, at least one model")
        if len({(m.config.vocab_size, m.config.input_vocab) for m in models}) != 1:
            raise ValueError("models of a mixture must share their vocabulary")
        groups: dict[ModelConfig, list[int]] = {}
        for index, model in enumerate(models):
            groups.setdefault(model.config.stepped_shape, []).append(index)
        w = np.asarray(weights, np.float32) / float(np.sum(weights))
        self.groups = list(groups.values())
        self.stacks = [StackedLstm([models[i] for i in group]) for group in self.groups]
        self.weights = [w[group][:, None, None] for group in self.groups]
        self.vocab_size = models[0].config.vocab_size

    def start(self, batch: int, controls: Sequence[int]) -> list[LstmState]:
        """Fresh states; ``controls[i]`` is the control id (metre, mode and register band) for model ``i``."""
        return [stack.start(batch, np.asarray([controls[i] for i in group]))
                for stack, group in zip(self.stacks, self.groups, strict=True)]

    def step(self, states: list[LstmState], tokens: np.ndarray, position: int, bars_left: int) -> np.ndarray:
        """Feed input ids ``tokens[B]``; return the mixed next-step probabilities ``(B, V)`` (a new array)."""
        mixed = None
        for stack, weights, state in zip(self.stacks, self.weights, states, strict=True):
            logits = stack.step(state, tokens, position, bars_left)
            logits -= np.maximum.reduce(logits, axis=-1, keepdims=True)
            np.exp(logits, out=logits)
            logits *= weights / np.add.reduce(logits, axis=-1, keepdims=True)
            # One style: its probabilities are the sum (a copy is cheaper than a sum over one).
            part = logits[0].copy() if len(logits) == 1 else np.add.reduce(logits, axis=0)
            mixed = part if mixed is None else mixed + part
        assert mixed is not None
        return mixed


@dataclass(frozen=True)
class Samples:
    """Sampled continuations and how likely the (untempered) mixture finds each."""

    tokens: np.ndarray
    #: Mean log-probability per step (nats), the END after the last step included.
    log_likelihood: np.ndarray


#: Sampling phases: 0 at the very start, 1 in silence, 2 while a note sounds (from the sounding pitch).
_FIRST, _SILENT, _SOUNDING = 0, 1, 2


def _allowed(vocab_size: int) -> np.ndarray:
    """Per phase, the tokens that may come next: no HOLD first, no REST in silence; never PAD,
    START or END."""
    table = np.zeros((3, vocab_size), np.float32)
    table[:, FIRST_PITCH_ID:] = 1.0
    table[(_FIRST, _SOUNDING), REST_ID] = 1.0
    table[(_SILENT, _SOUNDING), HOLD_ID] = 1.0
    return table


def _sounding_tables(rep: Representation, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lookups for the step loop, built with ``rep.input_ids`` and ``rep.next_sounding``: by (drawn id,
    sounding pitch id before it) the input id fed back and the sounding pitch id after it; by sounding
    pitch id the tokens ``allowed`` next. Their last column (row) is silence, so that a sounding id of -1
    indexes it as it is."""
    vocab_size = allowed.shape[1]
    sounding = np.append(np.arange(vocab_size), -1)
    ids, before = np.meshgrid(np.arange(vocab_size), sounding, indexing="ij")
    phase = np.where(sounding >= 0, _SOUNDING, _SILENT)
    return rep.input_ids(ids, before), rep.next_sounding(ids, before), allowed[phase]


def _range_of(ids: np.ndarray, vocab_size: int) -> int:
    """The range state (``_range_tables``) of a melody's target ids: its lowest and highest pitch."""
    struck = ids[ids >= FIRST_PITCH_ID] - FIRST_PITCH_ID
    side = vocab_size - FIRST_PITCH_ID + 1  # P + 1
    return int(struck.min() * side + struck.max()) if len(struck) else (side - 1) * side


@functools.cache
def _range_tables(vocab_size: int, span: int) -> tuple[np.ndarray, np.ndarray]:
    """Lookups for keeping a melody within ``span`` semitones, over range states ``lowest * (P + 1) +
    highest`` (pitch indices of the ``P`` pitches; no pitch yet is ``lowest = P, highest = 0``): by (drawn
    id, state) the state after it, and by state a 0/1 row over the pitches, 0 for those that would widen
    the range past ``span`` (past the range itself, where that is already wider: a primer's). Read-only."""
    n_pitches = vocab_size - FIRST_PITCH_ID
    lowest, highest = np.divmod(np.arange((n_pitches + 1) ** 2), n_pitches + 1)
    pitch = np.arange(vocab_size) - FIRST_PITCH_ID
    struck = (pitch >= 0)[:, None]
    range_after = (np.where(struck, np.minimum(lowest, pitch[:, None]), lowest) * (n_pitches + 1)
                   + np.where(struck, np.maximum(highest, pitch[:, None]), highest))
    pitch = pitch[FIRST_PITCH_ID:]
    widened = np.maximum(highest[:, None], pitch) - np.minimum(lowest[:, None], pitch)
    too_wide = (widened > np.maximum(span, highest - lowest)[:, None]) & (lowest < n_pitches)[:, None]
    in_reach = (~too_wide).astype(np.float32)  # once a pitch has sounded
    range_after.flags.writeable = in_reach.flags.writeable = False
    return range_after, in_reach


def _tempered(weights: np.ndarray, inverse_temperature: np.float32) -> np.ndarray:
    """``weights`` to the power ``inverse_temperature``, up to a factor per row, on log-probabilities:
    raising float32 weights to 1/0.1 would underflow to all zeros."""
    with np.errstate(divide="ignore"):
        logw = np.log(weights)
    logw -= logw.max(axis=1, keepdims=True)
    logw *= inverse_temperature
    return np.exp(logw)


def _cadence_bias(rep: Representation, events: np.ndarray, key: tuple[int, bool] | None) -> np.ndarray:
    """Per candidate, ``CADENCE_BOOST`` on the pitches of its key's tonic, third and fifth (the key given,
    else each candidate's estimated key)."""
    if key is not None:
        stable = np.array([stable_degrees(*key)] * len(events))
    else:
        tonics, minors = estimate_keys(events)
        stable = np.array([stable_degrees(t, m) for t, m in zip(tonics, minors, strict=True)])
    pitch_class = rep.pitch_classes(inputs=False)  # 12 for ids with no pitch: never a stable degree
    hit = (pitch_class[None, :, None] == stable[:, None, :]).any(axis=2)
    return np.where(hit, CADENCE_BOOST, 1.0).astype(np.float32)


def _draw(weights: np.ndarray, top_p: float, uniforms: np.ndarray,
          in_reach: np.ndarray | None = None) -> np.ndarray:
    """One token per row from unnormalised ``weights (B, V)`` (changed in place). Top-p cuts each row's
    pitches to their nucleus (the fewest likeliest pitches holding ``top_p`` of the pitches' weight),
    scaled back to the pitches' weight: it keeps out unlikely notes, never the onsets themselves. On a
    16th-note grid a held note is often likelier than ``top_p`` alone, and a nucleus over every token
    left no onset there: melodies came out sparser and plainer than real tunes. ``in_reach (B, P)`` (0/1
    per pitch) keeps out the pitches past a melody's span the same way, before the nucleus: a note starts
    as often as the model says, on a pitch within reach."""
    if top_p < 1.0 or in_reach is not None:  # else nothing to cut
        pitches = weights[:, FIRST_PITCH_ID:]
        total = pitches.sum(axis=1, keepdims=True)
        kept = pitches * in_reach if in_reach is not None else pitches
        if top_p < 1.0:
            kept = _nucleus(kept, top_p)
        np.multiply(kept, total / np.maximum(kept.sum(axis=1, keepdims=True), _TINY), out=pitches)
    cumulative = np.add.accumulate(weights, axis=1)
    beyond = cumulative > uniforms[:, None] * cumulative[:, -1:]
    # u * total rounds up to total once in ~2**53 draws: stay inside the row (the last id is a pitch).
    beyond[:, -1] = True
    return beyond.argmax(axis=1)  # the first id whose cumulative weight passes u * total


def _nucleus(weights: np.ndarray, top_p: float) -> np.ndarray:
    """``weights`` with those outside each row's top-p nucleus set to 0 (``top_p < 1``): the smallest ones,
    as many as sum to at most ``1 - top_p`` of the row's total."""
    ascending = weights.copy()
    ascending.sort(axis=1)
    tail = np.add.accumulate(ascending, axis=1)
    smallest_kept = ascending[np.arange(len(weights)), (tail > (1.0 - top_p) * tail[:, -1:]).argmax(axis=1)]
    return weights * (weights >= smallest_kept[:, None])


@functools.cache
def pin_blas_to_one_thread() -> None:
    """Keep BLAS on one thread (process-wide): batch-of-8 matmuls this small lose more to thread
    hand-off than they gain, up to 20 times over on a busy 2-core machine."""
    threadpoolctl.threadpool_limits(1, user_api="blas")


def sample(
    mixture: Mixture,
    rep: Representation,
    *,
    steps: int,
    steps_per_bar: int,
    candidates: int,
    rng: np.random.Generator,
    controls: Sequence[int],
    temperature: float = 1.0,
    top_p: float = 1.0,
    primer: Sequence[int] = (),
    cadence_from: int | None = None,
    key: tuple[int, bool] | None = None,
    repetition: RepetitionModel | None = None,
    first_onset_by: int | None = None,
    span: int | None = None,
) -> Samples:
    """Sample ``candidates`` continuations of ``steps`` target ids after ``primer`` (target ids, starting
    at a bar line), in one batch. The piece ends after ``primer + steps`` steps: each step's bars-left
    input counts to there.

    Each step draws from the mixed distribution with temperature applied to its log-probabilities, its
    pitches cut to their top-p nucleus (``_draw``). Only REST, HOLD and pitches are drawn, in canonical
    order (no HOLD first, no REST in silence); without a primer (else it is ignored) a note starts by
    step ``first_onset_by`` (default: the first bar's last step), so a late start is an anacrusis at most:
    compose passes the bar's last half beat (in 4/4 an eighth, in 4/2 a quarter). From step
    ``cadence_from`` on, the tonic, third and fifth of ``key`` (pitch class, minor) are favoured as
    onsets. ``repetition`` (a short-term model of each candidate so far) is mixed into the distribution.
    With ``span`` (semitones), no pitch is drawn that would widen a candidate's range, primer included,
    past it (or past the primer's own, if wider).
    """
    pin_blas_to_one_thread()
    total = len(primer) + steps
    total_bars = -(-total // steps_per_bar)

    def left(k: int) -> int:
        return max(total_bars - 1 - k // steps_per_bar, 0)

    primer_ids = np.array(primer, np.int64)
    inputs = rep.sequence_inputs(np.concatenate([primer_ids, [END]])) if len(primer) else np.array([START])
    states = mixture.start(1, controls)
    for k, token in enumerate(inputs):
        probs = mixture.step(states, np.array([token]), k % steps_per_bar, left(k))
    for state in states:
        state.select(np.zeros(candidates, np.intp))
    probs = np.repeat(probs, candidates, axis=0)
    history = np.tile(primer_ids, (candidates, 1))
    repeats = (repetition or RepetitionModel()).start(history, total, steps_per_bar)
    probs = repeats.mix(probs)
    sounding = np.full(candidates, -1)
    for token in primer_ids:
        sounding = rep.next_sounding(np.full(candidates, token), sounding)
    allowed = _allowed(mixture.vocab_size)
    fed_after, sounding_after, allowed_after = _sounding_tables(rep, allowed)
    inverse_temperature = np.float32(1.0 / temperature)
    forced_onset_at = min(steps_per_bar if first_onset_by is None else first_onset_by + 1, steps) - 1
    uniforms = rng.random((steps, candidates))
    rows = np.arange(candidates)
    tokens = np.empty((candidates, steps), np.int64)
    picked = np.empty((steps + 1, candidates), np.float32)
    bias = None
    if span is not None:
        range_after, in_reach = _range_tables(mixture.vocab_size, span)
        ranges = np.full(candidates, _range_of(primer_ids, mixture.vocab_size))
    for t in range(steps):
        if t == cadence_from:
            sofar = np.concatenate([np.broadcast_to(rep.id_events(primer_ids), (candidates, len(primer))),
                                    rep.id_events(tokens[:, :t])], axis=1)
            bias = _cadence_bias(rep, sofar, key)
        weights = probs * (allowed[_FIRST] if t == 0 and not len(primer) else allowed_after[sounding])
        if t == forced_onset_at and not len(primer):  # nothing struck yet: a note now
            weights[:, (REST_ID, HOLD_ID)] *= (tokens[:, :t] >= FIRST_PITCH_ID).any(axis=1)[:, None]
        if bias is not None:
            weights *= bias
        if inverse_temperature != 1.0:
            weights = _tempered(weights, inverse_temperature)
        chosen = tokens[:, t] = _draw(weights, top_p, uniforms[t], None if span is None else in_reach[ranges])
        picked[t] = probs[rows, chosen]
        if span is not None:
            ranges = range_after[chosen, ranges]
        fed = fed_after[chosen, sounding]
        sounding = sounding_after[chosen, sounding]
        k = len(primer) + t + 1
        repeats.push(chosen)
        probs = repeats.mix(mixture.step(states, fed, k % steps_per_bar, left(k)))
    picked[steps] = probs[:, END]
    log_likelihood = np.log(np.maximum(picked, _TINY)).mean(axis=0)
    return Samples(tokens, log_likelihood)
