"""The trained LSTM in plain numpy: one step at a time with the state carried forward.

Weights come from ``weights.npz`` exported by training. The first layer's input projection is
folded into lookup tables (token and bar position), so a step costs one gather per input and one
fused matmul per layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

State = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    max_positions: int
    token_embedding: int
    position_embedding: int
    units: int
    layers: int
    dropout: float = 0.0

    @classmethod
    def load(cls, path: Path) -> ModelConfig:
        data = json.loads(path.read_text())
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


class LstmModel:
    """Stacked LSTM language model over melody tokens, conditioned on bar position."""

    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray]) -> None:
        self.config = config
        e = config.token_embedding
        kernel0 = weights["lstm0_kernel"].astype(np.float32)
        self.token_table = (weights["token_embedding"] @ kernel0[:e] + weights["lstm0_bias"]).astype(
            np.float32
        )
        self.position_table = (weights["position_embedding"] @ kernel0[e:]).astype(np.float32)
        self.recurrent0 = weights["lstm0_recurrent"].astype(np.float32)
        self.fused = [
            np.concatenate([weights[f"lstm{i}_kernel"], weights[f"lstm{i}_recurrent"]]).astype(np.float32)
            for i in range(1, config.layers)
        ]
        self.biases = [weights[f"lstm{i}_bias"].astype(np.float32) for i in range(1, config.layers)]
        self.dense_kernel = weights["dense_kernel"].astype(np.float32)
        self.dense_bias = weights["dense_bias"].astype(np.float32)

    @classmethod
    def load(cls, folder: Path) -> LstmModel:
        config = ModelConfig.load(folder / "config.json")
        with np.load(folder / "weights.npz") as data:
            return cls(config, {k: data[k] for k in data.files})

    @property
    def parameters(self) -> int:
        c = self.config
        lstm = sum(4 * c.units * (n_in + c.units + 1) for n_in in
                   [c.token_embedding + c.position_embedding] + [c.units] * (c.layers - 1))
        embed = c.vocab_size * c.token_embedding + c.max_positions * c.position_embedding
        return lstm + embed + c.units * c.vocab_size + c.vocab_size

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

    def step(self, tokens: np.ndarray, positions: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Logits ``(batch, vocab)`` for the next token, and the new state."""
        h, c = state[0]
        z = self.token_table[tokens] + self.position_table[positions] + h @ self.recurrent0
        h, c = self._cell(z, c)
        new_state = [(h, c)]
        for layer, (kernel, bias) in enumerate(zip(self.fused, self.biases, strict=True), 1):
            h_prev, c_prev = state[layer]
            z = np.concatenate([h, h_prev], axis=1) @ kernel + bias
            h, c = self._cell(z, c_prev)
            new_state.append((h, c))
        return h @ self.dense_kernel + self.dense_bias, new_state

    def forward(self, tokens: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Logits ``(batch, time, vocab)`` for whole sequences (teacher forcing)."""
        batch, steps = tokens.shape
        state = self.initial_state(batch)
        out = np.empty((batch, steps, self.config.vocab_size), np.float32)
        for t in range(steps):
            out[:, t], state = self.step(tokens[:, t], positions[:, t], state)
        return out


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
