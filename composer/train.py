"""Training one style model: corpus -> split -> augment -> Keras -> exported numpy weights + card."""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from composer.corpus import CorpusReport
from composer.dataset import batches, split_pieces, token_sequences, transpositions
from composer.encoding import MAX_POSITIONS, VOCAB_SIZE
from composer.lstm import LstmModel, ModelConfig, log_softmax
from composer.melody import Melody
from composer.ngram import NGramModel


@dataclass
class TrainOptions:
    units: int = 160
    layers: int = 2
    token_embedding: int = 48
    position_embedding: int = 16
    dropout: float = 0.15
    batch_size: int = 128
    learning_rate: float = 3e-3
    max_epochs: int = 30
    patience: int = 2
    #: Training tokens per epoch to aim for with transpositions (at most 12 per piece).
    target_tokens: int = 1_000_000
    max_minutes: float = 40.0
    seed: int = 7


def sequence_nll(model: LstmModel, melodies: list[Melody], batch_size: int = 64) -> float:
    """Mean negative log-likelihood per target token (nats) of the numpy model."""
    total, count = 0.0, 0
    for tokens, positions, targets, weights in batches(melodies, batch_size):
        logp = log_softmax(model.forward(tokens, positions))
        picked = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
        total -= float((picked * weights).sum())
        count += int(weights.sum())
    return total / max(count, 1)


def ngram_baseline(train: list[Melody], augmented: list[Melody], validation: list[Melody],
                   test: list[Melody]) -> dict:
    """The best smoothed n-gram (order 3..6, discount, with or without the augmented data) by
    validation NLL, and its test NLL."""
    val_seqs, test_seqs = token_sequences(validation), token_sequences(test)
    best: dict | None = None
    for name, data in (("original keys", train), ("augmented", augmented)):
        full = NGramModel(6, VOCAB_SIZE).fit(token_sequences(data))
        for order in (3, 4, 5, 6):
            for discount in (0.6, 0.75, 0.9):
                model = full.with_order(order, discount)
                val = model.nll(val_seqs)
                if best is None or val < best["validation_nll"]:
                    best = {"order": order, "discount": discount, "data": name,
                            "validation_nll": val, "model": model}
    assert best is not None
    best["test_nll"] = best.pop("model").nll(test_seqs)
    return best


def train_style(style: str, melodies: list[Melody], report: CorpusReport, source: str,
                out_dir: Path, options: TrainOptions, description: str, program: int) -> dict:
    """Train, evaluate against the n-gram baseline, and write ``out_dir`` (weights, config, card)."""
    import keras
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(options.seed)
    from composer.keras_model import build_keras_model, export_weights

    split = split_pieces(melodies)
    rng = random.Random(options.seed)
    train_tokens = sum(m.n_steps + 1 for m in split.train)
    per_piece = int(np.clip(round(options.target_tokens / max(train_tokens, 1)) - 1, 0, 12))
    augmented = [t for m in split.train for t in transpositions(m, per_piece, rng)]
    log(f"{style}: {len(split.train)}/{len(split.validation)}/{len(split.test)} pieces train/val/test; "
        f"{per_piece} transpositions per piece -> {sum(m.n_steps + 1 for m in augmented)} tokens an epoch")

    config = ModelConfig(VOCAB_SIZE, MAX_POSITIONS, options.token_embedding, options.position_embedding,
                         options.units, options.layers, options.dropout)
    model = build_keras_model(config)
    model.compile(optimizer=keras.optimizers.Adam(options.learning_rate, clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=[])
    val_batches = batches(split.validation, options.batch_size)

    started = time.monotonic()

    class Budget(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):  # noqa: ANN001
            minutes = (time.monotonic() - started) / 60
            log(f"{style}: epoch {epoch + 1} done, {minutes:.1f} min, "
                f"loss {logs.get('loss', 0):.4f}, val_loss {logs.get('val_loss', 0):.4f}")
            if minutes * (epoch + 2) / (epoch + 1) > options.max_minutes:
                log(f"{style}: stopping, the next epoch would pass {options.max_minutes} min")
                self.model.stop_training = True

    def as_dataset(items, shuffle_seed: int | None):  # noqa: ANN001, ANN202
        def gen():
            order = list(range(len(items)))
            if shuffle_seed is not None:
                random.Random(shuffle_seed + gen.epoch).shuffle(order)
                gen.epoch += 1
            for i in order:
                tokens, positions, targets, weights = items[i]
                yield (tokens, positions), targets, weights
        gen.epoch = 0
        spec = (
            (tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, None), tf.int32)),
            tf.TensorSpec((None, None), tf.int32),
            tf.TensorSpec((None, None), tf.float32),
        )
        return tf.data.Dataset.from_generator(gen, output_signature=spec).repeat().prefetch(2)

    train_batches = batches(augmented, options.batch_size)
    history = model.fit(
        as_dataset(train_batches, options.seed),
        steps_per_epoch=len(train_batches),
        validation_data=as_dataset(val_batches, None),
        validation_steps=len(val_batches),
        epochs=options.max_epochs,
        verbose=2,
        callbacks=[
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=options.patience,
                                          restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1),
            Budget(),
        ],
    )
    train_seconds = time.monotonic() - started
    weights = export_weights(model)
    numpy_model = LstmModel(config, weights)
    log(f"{style}: scoring the test split")
    val_nll = sequence_nll(numpy_model, split.validation)
    test_nll = sequence_nll(numpy_model, split.test)
    log(f"{style}: LSTM test NLL {test_nll:.4f}; fitting the n-gram baseline")
    baseline = ngram_baseline(split.train, augmented, split.validation, split.test)
    log(f"{style}: n-gram test NLL {baseline['test_nll']:.4f} ({baseline['order']}-gram)")

    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_dir / "weights.npz", **weights)
    signatures = Counter(m.time_signature for m in melodies)
    meta = {
        **asdict(config),
        "style": style,
        "description": description,
        "program": program,
        "time_signature": list(signatures.most_common(1)[0][0]),
        "tempo_bpm": round(statistics.median(m.tempo_bpm for m in melodies)),
    }
    (out_dir / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    card = {
        "style": style,
        "description": description,
        "source": source,
        "pieces": report.pieces,
        "files": report.files,
        "skipped": dict(report.skipped),
        "split_pieces": {"train": len(split.train), "validation": len(split.validation),
                         "test": len(split.test)},
        "tokens": sum(m.n_steps + 1 for m in melodies),
        "train_tokens_per_epoch": sum(m.n_steps + 1 for m in augmented),
        "transpositions_per_piece": per_piece,
        "vocab_size": VOCAB_SIZE,
        "parameters": numpy_model.parameters,
        "architecture": f"embedding {config.token_embedding}+{config.position_embedding} (bar position), "
                        f"{config.layers} x LSTM({config.units}), dropout {config.dropout}, dense",
        "epochs": len(history.history["loss"]),
        "train_seconds": round(train_seconds),
        "machine": "2 CPU cores (the project's development machine), TensorFlow CPU",
        "validation_nll": round(val_nll, 4),
        "test_nll": round(test_nll, 4),
        "ngram_test_nll": round(baseline["test_nll"], 4),
        "ngram": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in baseline.items()
                  if k != "test_nll"},
        "uniform_nll": round(float(np.log(VOCAB_SIZE)), 4),
        "options": asdict(options),
        "command": f"python -m composer train --style {style} ...",
    }
    (out_dir / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (out_dir / "README.md").write_text(model_readme(card))
    return card


def model_readme(card: dict) -> str:
    gain = 100 * (1 - card["test_nll"] / card["ngram_test_nll"])
    return (
        f"# {card['style']} model\n\n"
        f"{card['description']}. Trained on {card['pieces']} melodies ({card['tokens']:,} steps) from "
        f"{card['source']}, split by piece {card['split_pieces']['train']}/"
        f"{card['split_pieces']['validation']}/{card['split_pieces']['test']} (train/validation/test), "
        f"{card['transpositions_per_piece']} random transpositions per training piece.\n\n"
        f"{card['architecture']}; {card['parameters']:,} parameters; {card['epochs']} epochs in "
        f"{card['train_seconds']} s on {card['machine']}.\n\n"
        f"Test NLL {card['test_nll']} nats/step against {card['ngram_test_nll']} for the best smoothed "
        f"n-gram on the same split ({gain:.1f}% lower); uniform guessing would be {card['uniform_nll']}.\n\n"
        f"Reproduce: `{card['command']}`; reprint the table: `python -m composer evaluate`.\n"
    )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
