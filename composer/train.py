"""Training one style model: corpus -> split -> augment -> Keras -> exported numpy weights + card."""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from composer.corpus import CorpusReport
from composer.dataset import batches, prepare
from composer.evaluate import score_model
from composer.lstm import ModelConfig
from composer.melody import Melody
from composer.recipe import Recipe
from composer.representation import Representation


def train_style(style: str, melodies: list[Melody], report: CorpusReport, source: str,
                out_dir: Path, options: Recipe, description: str, program: int, command: str,
                top_p: float) -> dict:
    """Train, write ``out_dir`` (weights, config), then score it against the n-gram baselines (card)."""
    import keras
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(options.threads)
    keras.utils.set_random_seed(options.seed)
    from composer.keras_model import build_keras_model, export_weights

    rep = Representation.for_corpus(melodies, options.key_policy, max_bars_left=options.max_bars_left,
                                    modes=options.modes, register_bands=options.register_bands)
    data = prepare(melodies, options.target_tokens, options.seed, rep)
    split, rep = data.split, data.rep
    log(f"{style}: {len(split.train)}/{len(split.validation)}/{len(split.test)} pieces train/val/test; "
        f"keys {rep.key_policy}; metres {', '.join(f'{n}/{d}' for n, d in rep.metres)} -> "
        f"{sum(m.n_steps + 1 for m in data.augmented)} steps an epoch; modes "
        f"{', '.join(f'{m} {c}' for m, c in zip(rep.modes, rep.mode_counts, strict=True))}"
        + (f"; register bands at {rep.register_edges} ({rep.band_counts} pieces)" if rep.bands > 1 else ""))

    config = ModelConfig.for_representation(rep, units=options.units, layers=options.layers,
                                            dropout=options.dropout,
                                            pitch_class_sharing=options.pitch_class_sharing,
                                            interval_terms=options.interval_terms)
    model = build_keras_model(config, rep=rep)
    model.compile(optimizer=keras.optimizers.Adam(options.learning_rate, clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=[])
    started = time.monotonic()

    class Budget(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            minutes = (time.monotonic() - started) / 60
            log(f"{style}: epoch {epoch + 1}/{options.max_epochs} done, {minutes:.1f} min "
                f"({max(options.max_minutes - minutes, 0):.1f} min of the budget left), "
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
                yield items[i]

        spec = (
            tuple(tf.TensorSpec((None, None), tf.int32) for _ in range(4)),
            tf.TensorSpec((None, None), tf.int32),
            tf.TensorSpec((None, None), tf.float32),
        )
        return tf.data.Dataset.from_generator(gen, output_signature=spec).repeat().prefetch(2)

    train_batches = batches(rep, data.augmented, options.batch_size)
    val_batches = batches(rep, split.validation, options.batch_size)
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
    np.savez_compressed(out_dir / "weights.npz", **export_weights(model, rep))
    meta = {
        "style": style,
        "description": description,
        "program": program,
        "top_p": top_p,
        "tempo_bpm": round(statistics.median(m.tempo_bpm for m in melodies)),
        "model": asdict(config),
        "representation": rep.to_config(),
    }
    (out_dir / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    training = {
        "architecture": f"embeddings {config.token_embedding} (previous token, holds carrying their pitch) "
                        f"+ {config.position_embedding} (bar position) + {config.bars_left_embedding} (bars "
                        f"left) + {config.control_embedding} (metre, mode"
                        f"{' and register band' if rep.bands > 1 else ''}), {config.layers} x "
                        f"LSTM({config.units}), dropout {config.dropout}, dense"
                        + (", pitch-class terms shared by every octave in the token embedding and the output "
                           "layer (trained, then folded into the exported weights)"
                           if config.pitch_class_sharing else "")
                        + (", a term per interval from the sounding pitch in the output layer, shared by "
                           "every pitch" if config.interval_terms else ""),
        "epochs": len(history.history["loss"]),
        "train_seconds": round(train_seconds),
        "machine": f"the project's 2-core development machine, TensorFlow CPU, {options.threads} thread(s)",
        "recipe": asdict(options),
        "command": command,
    }
    log(f"{style}: scoring against the n-gram baselines")
    return score_model(out_dir, data, report, source, training)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
