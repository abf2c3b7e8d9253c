"""The trained LSTM in plain numpy: one step at a time with the state carried forward.

Weights come from ``weights.npz`` exported by training. The first layer's input projection is folded
into one lookup table per input (token, bar position, bars left, control), so a step costs a few row
gathers and one fused matmul per layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from composer.representation import Representation, interval_index

#: The model's inputs, in the order of its first layer's kernel rows.
INPUTS = ("token", "position", "bars_left", "control")
State = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class ModelConfig:
    """The model's shape: one home for each architecture hyper-parameter."""

    input_vocab: int
    vocab_size: int
    max_positions: int
    bars_left: int
    controls: int
    token_embedding: int = 48
    position_embedding: int = 16
    bars_left_embedding: int = 8
    control_embedding: int = 8
    units: int = 160
    layers: int = 2
    dropout: float = 0.15
    #: Training only: the token embedding and the output layer each get a term per pitch class shared by
    #: every octave (folded into the exported weights, so the numpy model is the same either way).
    pitch_class_sharing: bool = False
    #: The output layer gets a term per interval from the pitch the input strikes or holds, shared by every
    #: pitch (IDyOM's interval viewpoint beside the pitch one): a leap of an octave is one thing wherever it
    #: starts. Unlike pitch-class sharing it cannot be folded into the dense layer: the numpy model and
    #: the sampler add it per step (``interval_kernel``).
    interval_terms: bool = False

    @classmethod
    def for_representation(cls, rep: Representation, **shape: object) -> ModelConfig:
        return cls(rep.input_vocab_size, rep.vocab_size, rep.max_positions, rep.max_bars_left + 1,
                   rep.controls, **shape)  # type: ignore[arg-type]

    @property
    def stepped_shape(self) -> ModelConfig:
        """The config without its training-only fields (dropout, pitch-class sharing): models alike in it
        step as one stack."""
        return replace(self, dropout=0.0, pitch_class_sharing=False)

    def input_sizes(self) -> tuple[int, int, int, int]:
        return self.input_vocab, self.max_positions, self.bars_left, self.controls

    def embedding_widths(self) -> tuple[int, int, int, int]:
        return self.token_embedding, self.position_embedding, self.bars_left_embedding, self.control_embedding

    @classmethod
    def load(cls, path: Path) -> ModelConfig:
        data = json.loads(path.read_text())["model"]
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:  # a model made by a newer composer: better refused than run as another model
            raise ValueError(f"{path}: unknown model settings {', '.join(unknown)}")
        return cls(**data)

    @property
    def parameters(self) -> int:
        n_in = sum(self.embedding_widths())
        lstm = sum(4 * self.units * (n + self.units + 1) for n in [n_in] + [self.units] * (self.layers - 1))
        embed = sum(s * w for s, w in zip(self.input_sizes(), self.embedding_widths(), strict=True))
        intervals = self.units * (2 * self.pitches - 1) if self.interval_terms else 0
        return lstm + embed + self.units * self.vocab_size + self.vocab_size + intervals

    @property
    def pitches(self) -> int:
        return self.input_vocab - self.vocab_size

    def interval_index(self) -> np.ndarray:
        """``representation.interval_index`` of this vocabulary: the interval column of (input, target)."""
        return interval_index(self.vocab_size, self.input_vocab)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


class LstmModel:
    """Stacked LSTM language model over melody tokens with its representation's inputs."""

    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray]) -> None:
        self.config = config
        kernel0 = weights["lstm0_kernel"].astype(np.float32)
        edges = np.cumsum([0, *config.embedding_widths()])
        #: Layer 0's input projection per input: ``tables[k][id]`` (the bias is in the token table).
        self.tables = [
            (weights[f"{name}_embedding"] @ kernel0[a:b]).astype(np.float32)
            for name, a, b in zip(INPUTS, edges[:-1], edges[1:], strict=True)
        ]
        self.tables[0] += weights["lstm0_bias"].astype(np.float32)
        self.recurrent0 = weights["lstm0_recurrent"].astype(np.float32)
        self.fused = [
            np.concatenate([weights[f"lstm{i}_kernel"], weights[f"lstm{i}_recurrent"]]).astype(np.float32)
            for i in range(1, config.layers)
        ]
        self.biases = [weights[f"lstm{i}_bias"].astype(np.float32) for i in range(1, config.layers)]
        self.dense_kernel = weights["dense_kernel"].astype(np.float32)
        self.dense_bias = weights["dense_bias"].astype(np.float32)
        #: ``(units, 2 * pitches)``, the "no interval" column zero, and the column of each (input, target).
        self.interval_kernel: np.ndarray | None = None
        self.interval_index: np.ndarray | None = None
        if ("interval_kernel" in weights) != config.interval_terms:
            raise ValueError("the weights and the config disagree on interval terms")
        if config.interval_terms:
            kernel = weights["interval_kernel"].astype(np.float32)
            self.interval_kernel = np.concatenate([kernel, np.zeros((len(kernel), 1), np.float32)], axis=1)
            self.interval_index = config.interval_index()

    @classmethod
    def load(cls, folder: Path) -> LstmModel:
        config = ModelConfig.load(folder / "config.json")
        with np.load(folder / "weights.npz") as data:
            return cls(config, {k: data[k] for k in data.files})

    @property
    def parameters(self) -> int:
        return self.config.parameters

    def initial_state(self, batch: int) -> State:
        u = self.config.units
        return [(np.zeros((batch, u), np.float32), np.zeros((batch, u), np.float32))
                for _ in range(self.config.layers)]

    @staticmethod
    def _cell(z: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = c.shape[1]
        i = _sigmoid(z[:, :u])
        f = _sigmoid(z[:, u : 2 * u])
        g = np.tanh(z[:, 2 * u : 3 * u])
        o = _sigmoid(z[:, 3 * u :])
        c = f * c + i * g
        return o * np.tanh(c), c

    def step(self, inputs: tuple[np.ndarray, ...], state: State) -> tuple[np.ndarray, State]:
        """Logits ``(batch, vocab)`` for the next token from the four inputs ``(batch,)``; the new state."""
        h, c = state[0]
        z = sum(table[ids] for table, ids in zip(self.tables, inputs, strict=True)) + h @ self.recurrent0
        h, c = self._cell(z, c)
        new_state = [(h, c)]
        for layer, (kernel, bias) in enumerate(zip(self.fused, self.biases, strict=True), 1):
            h_prev, c_prev = state[layer]
            z = np.concatenate([h, h_prev], axis=1) @ kernel + bias
            h, c = self._cell(z, c_prev)
            new_state.append((h, c))
        logits = h @ self.dense_kernel + self.dense_bias
        if self.interval_kernel is not None and self.interval_index is not None:
            logits += np.take_along_axis(h @ self.interval_kernel, self.interval_index[inputs[0]], axis=1)
        return logits, new_state

    def forward(self, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        """Logits ``(batch, time, vocab)`` for whole sequences (teacher forcing); inputs ``(batch, time)``."""
        batch, steps = inputs[0].shape
        state = self.initial_state(batch)
        out = np.empty((batch, steps, self.config.vocab_size), np.float32)
        for t in range(steps):
            out[:, t], state = self.step(tuple(x[:, t] for x in inputs), state)
        return out


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
