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
from composer.dataset import batches, prepare
from composer.encoding import MAX_POSITIONS, VOCAB_SIZE
from composer.evaluate import score_model
from composer.lstm import ModelConfig
from composer.melody import Melody


@dataclass
class TrainOptions:
    units: int = 160
    layers: int = 2
    token_embedding: int = 48
    position_embedding: int = 16
    dropout: float = 0.15
    batch_size: int = 64
    learning_rate: float = 3e-3
    max_epochs: int = 30
    patience: int = 2
    #: Training tokens per epoch to aim for with transpositions (at most 12 per piece).
    target_tokens: int = 1_000_000
    max_minutes: float = 40.0
    seed: int = 7
    #: Move every piece to C major / A minor instead of transposing it at random.
    normalise_keys: bool = False


def train_style(style: str, melodies: list[Melody], report: CorpusReport, source: str,
                out_dir: Path, options: TrainOptions, description: str, program: int) -> dict:
    """Train, write ``out_dir`` (weights, config), then score it against the n-gram baseline (card)."""
    import keras
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(options.seed)
    from composer.keras_model import build_keras_model, export_weights

    data = prepare(melodies, options.target_tokens, options.seed, options.normalise_keys)
    split = data.split
    keys = "keys normalised" if data.key_shifts else f"{data.transpositions_per_piece} transpositions a piece"
    log(f"{style}: {len(split.train)}/{len(split.validation)}/{len(split.test)} pieces train/val/test; "
        f"{keys} -> {sum(m.n_steps + 1 for m in data.augmented)} tokens an epoch")

    config = ModelConfig(VOCAB_SIZE, MAX_POSITIONS, options.token_embedding, options.position_embedding,
                         options.units, options.layers, options.dropout)
    model = build_keras_model(config)
    model.compile(optimizer=keras.optimizers.Adam(options.learning_rate, clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=[])
    started = time.monotonic()

    class Budget(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            minutes = (time.monotonic() - started) / 60
            log(f"{style}: epoch {epoch + 1} done, {minutes:.1f} min, "
                f"loss {logs.get('loss', 0):.4f}, val_loss {logs.get('val_loss', 0):.4f}")
            if minutes * (epoch + 2) / (epoch + 1) > options.max_minutes:
                log(f"{style}: stopping, the next epoch would pass {options.max_minutes} min")
                self.model.stop_training = True

    def as_dataset(items, shuffle_seed: int | None):
        epoch = [0]

        def gen():
            order = list(range(len(items)))
            if shuffle_seed is not None:
                random.Random(shuffle_seed + epoch[0]).shuffle(order)
                epoch[0] += 1
            for i in order:
                tokens, positions, targets, weights = items[i]
                yield (tokens, positions), targets, weights

        spec = (
            (tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, None), tf.int32)),
            tf.TensorSpec((None, None), tf.int32),
            tf.TensorSpec((None, None), tf.float32),
        )
        return tf.data.Dataset.from_generator(gen, output_signature=spec).repeat().prefetch(2)

    train_batches = batches(data.augmented, options.batch_size)
    val_batches = batches(split.validation, options.batch_size)
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

    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_dir / "weights.npz", **export_weights(model))
    signatures = Counter(m.time_signature for m in melodies)
    meta = {
        **asdict(config),
        "style": style,
        "description": description,
        "program": program,
        "time_signature": list(signatures.most_common(1)[0][0]),
        "tempo_bpm": round(statistics.median(m.tempo_bpm for m in melodies)),
    }
    if data.key_shifts is not None:
        meta["key_shifts"] = data.key_shifts
    (out_dir / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    training = {
        "architecture": f"embedding {config.token_embedding}+{config.position_embedding} (bar position), "
                        f"{config.layers} x LSTM({config.units}), dropout {config.dropout}, dense",
        "epochs": len(history.history["loss"]),
        "train_seconds": round(train_seconds),
        "machine": "2 CPU cores (the project's development machine), TensorFlow CPU",
        "options": asdict(options),
        "command": training_command(style, options, source),
    }
    log(f"{style}: scoring against the n-gram baseline")
    return score_model(out_dir, data, report, source, training)


def training_command(style: str, options: TrainOptions, source: str) -> str:
    where = "--corpus" if source.startswith("music21") else "--midi-dir DIR"
    return (f"python -m composer train --style {style} {where} --units {options.units} "
            f"--epochs {options.max_epochs} --max-minutes {options.max_minutes:g} "
            f"--target-tokens {options.target_tokens}"
            + (" --normalise-keys" if options.normalise_keys else ""))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
