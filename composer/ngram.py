"""The baseline every model must beat: an interpolated absolute-discounting n-gram model."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from composer.encoding import START


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
