"""The Keras definition of the style model (training and checks only), and weight export."""

from __future__ import annotations

import numpy as np

from composer.lstm import ModelConfig


def build_keras_model(config: ModelConfig, training_dropout: bool = True):
    """Token + bar-position embeddings -> stacked LSTM -> logits over the vocabulary."""
    import keras

    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    positions = keras.Input(shape=(None,), dtype="int32", name="positions")
    x = keras.layers.Concatenate()([
        keras.layers.Embedding(config.vocab_size, config.token_embedding, name="token_embedding")(tokens),
        keras.layers.Embedding(config.max_positions, config.position_embedding,
                               name="position_embedding")(positions),
    ])
    for i in range(config.layers):
        x = keras.layers.LSTM(config.units, return_sequences=True, name=f"lstm{i}")(x)
        if training_dropout and config.dropout:
            x = keras.layers.Dropout(config.dropout)(x)
    logits = keras.layers.Dense(config.vocab_size, name="dense")(x)
    return keras.Model([tokens, positions], logits)


def export_weights(model) -> dict[str, np.ndarray]:
    """The arrays ``composer.lstm.LstmModel`` reads, by name."""
    out = {
        "token_embedding": model.get_layer("token_embedding").get_weights()[0],
        "position_embedding": model.get_layer("position_embedding").get_weights()[0],
    }
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
    model.get_layer("token_embedding").set_weights([weights["token_embedding"]])
    model.get_layer("position_embedding").set_weights([weights["position_embedding"]])
    i = 0
    while f"lstm{i}_kernel" in weights:
        model.get_layer(f"lstm{i}").set_weights(
            [weights[f"lstm{i}_kernel"], weights[f"lstm{i}_recurrent"], weights[f"lstm{i}_bias"]]
        )
        i += 1
    model.get_layer("dense").set_weights([weights["dense_kernel"], weights["dense_bias"]])
