"""The Keras definition of the style model (training and checks only), and weight export."""

from __future__ import annotations

import numpy as np

from composer.lstm import INPUTS, ModelConfig


def build_keras_model(config: ModelConfig, training_dropout: bool = True):
    """Embeddings of the four inputs (previous token with its held pitch, bar position, bars left,
    metre and mode) -> stacked LSTM -> logits over the target ids."""
    import keras

    inputs = [keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUTS]
    sizes = config.input_sizes()
    widths = config.embedding_widths()
    x = keras.layers.Concatenate()([
        keras.layers.Embedding(size, width, name=f"{name}_embedding")(tensor)
        for name, tensor, size, width in zip(INPUTS, inputs, sizes, widths, strict=True)
    ])
    for i in range(config.layers):
        x = keras.layers.LSTM(config.units, return_sequences=True, name=f"lstm{i}")(x)
        if training_dropout and config.dropout:
            x = keras.layers.Dropout(config.dropout)(x)
    logits = keras.layers.Dense(config.vocab_size, name="dense")(x)
    return keras.Model(inputs, logits)


def export_weights(model) -> dict[str, np.ndarray]:
    """The arrays ``composer.lstm.LstmModel`` reads, by name."""
    out = {f"{name}_embedding": model.get_layer(f"{name}_embedding").get_weights()[0] for name in INPUTS}
    i = 0
    while True:
        try:
            layer = model.get_layer(f"lstm{i}")
        except ValueError:
            break
        out[f"lstm{i}_kernel"], out[f"lstm{i}_recurrent"], out[f"lstm{i}_bias"] = layer.get_weights()
        i += 1
    out["dense_kernel"], out["dense_bias"] = model.get_layer("dense").get_weights()
    return {k: v.astype(np.float32) for k, v in out.items()}


def load_weights(model, weights: dict[str, np.ndarray]) -> None:
    """Put exported arrays back into a Keras model built from the same config."""
    for name in INPUTS:
        model.get_layer(f"{name}_embedding").set_weights([weights[f"{name}_embedding"]])
    i = 0
    while f"lstm{i}_kernel" in weights:
        model.get_layer(f"lstm{i}").set_weights(
            [weights[f"lstm{i}_kernel"], weights[f"lstm{i}_recurrent"], weights[f"lstm{i}_bias"]]
        )
        i += 1
    model.get_layer("dense").set_weights([weights["dense_kernel"], weights["dense_bias"]])
