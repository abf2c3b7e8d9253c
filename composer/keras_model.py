"""The Keras definition of the style model (training and checks only), and weight export."""

from __future__ import annotations

import numpy as np

from composer.lstm import INPUTS, ModelConfig
from composer.representation import NO_PITCH_CLASS, Representation

#: The layers of the pitch-class terms (``ModelConfig.pitch_class_sharing``).
PITCH_CLASS_EMBEDDING, PITCH_CLASS_DENSE = "token_pitch_class_embedding", "pitch_class_dense"
#: The layer of the interval terms (``ModelConfig.interval_terms``).
INTERVAL_DENSE = "interval_dense"


def build_keras_model(config: ModelConfig, training_dropout: bool = True,
                      rep: Representation | None = None):
    """Embeddings of the four inputs (previous token with its held pitch, bar position, bars left, the
    control: metre, mode and register band) -> stacked LSTM -> logits over the target ids. With
    ``config.pitch_class_sharing`` (``rep`` gives the ids' pitch classes) the token embedding adds a vector
    per pitch class and the logits a term per pitch class, each shared by every octave: ``export_weights``
    folds them in. With ``config.interval_terms`` the logits of each pitch also get a term for its interval
    from the pitch the previous token strikes or holds, shared by every pitch (exported as is)."""
    import keras

    inputs = [keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUTS]
    sizes = config.input_sizes()
    widths = config.embedding_widths()
    embedded = [keras.layers.Embedding(size, width, name=f"{name}_embedding")(tensor)
                for name, tensor, size, width in zip(INPUTS, inputs, sizes, widths, strict=True)]
    if config.pitch_class_sharing:
        if rep is None:
            raise ValueError("pitch-class sharing needs the representation")
        classes = keras.ops.take(keras.ops.convert_to_tensor(rep.pitch_classes(inputs=True), "int32"),
                                 inputs[0])
        shared_embedding = keras.layers.Embedding(NO_PITCH_CLASS + 1, widths[0], name=PITCH_CLASS_EMBEDDING)
        embedded[0] = embedded[0] + shared_embedding(classes)
    x = keras.layers.Concatenate()(embedded)
    for i in range(config.layers):
        x = keras.layers.LSTM(config.units, return_sequences=True, name=f"lstm{i}")(x)
        if training_dropout and config.dropout:
            x = keras.layers.Dropout(config.dropout)(x)
    logits = keras.layers.Dense(config.vocab_size, name="dense")(x)
    if config.pitch_class_sharing:
        shared = keras.layers.Dense(NO_PITCH_CLASS + 1, use_bias=False, name=PITCH_CLASS_DENSE)(x)
        logits = logits + keras.ops.take(shared, rep.pitch_classes(inputs=False), axis=-1)
    if config.interval_terms:
        intervals = keras.layers.Dense(2 * config.pitches - 1, use_bias=False, name=INTERVAL_DENSE)(x)
        intervals = keras.ops.pad(intervals, [(0, 0), (0, 0), (0, 1)])  # the "no interval" column, zero
        columns = keras.ops.take(keras.ops.convert_to_tensor(config.interval_index(), "int32"), inputs[0],
                                 axis=0)
        logits = logits + keras.ops.take_along_axis(intervals, columns, axis=-1)
    return keras.Model(inputs, logits)


def _layer(model, name: str):
    """The model's layer of that name, None if it has none."""
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def export_weights(model, rep: Representation | None = None) -> dict[str, np.ndarray]:
    """The arrays ``composer.lstm.LstmModel`` reads, by name (a model with pitch-class sharing needs its
    ``rep``: the shared terms are folded into the token embedding and the output kernel)."""
    out = {f"{name}_embedding": model.get_layer(f"{name}_embedding").get_weights()[0] for name in INPUTS}
    i = 0
    while (layer := _layer(model, f"lstm{i}")) is not None:
        out[f"lstm{i}_kernel"], out[f"lstm{i}_recurrent"], out[f"lstm{i}_bias"] = layer.get_weights()
        i += 1
    out["dense_kernel"], out["dense_bias"] = model.get_layer("dense").get_weights()
    if (layer := _layer(model, INTERVAL_DENSE)) is not None:
        (out["interval_kernel"],) = layer.get_weights()
    if _layer(model, PITCH_CLASS_DENSE) is not None:
        if rep is None:
            raise ValueError("pitch-class sharing needs the representation")
        (embedding,) = _layer(model, PITCH_CLASS_EMBEDDING).get_weights()
        (kernel,) = _layer(model, PITCH_CLASS_DENSE).get_weights()
        out["token_embedding"] = out["token_embedding"] + embedding[rep.pitch_classes(inputs=True)]
        out["dense_kernel"] = out["dense_kernel"] + kernel[:, rep.pitch_classes(inputs=False)]
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
    for name in (PITCH_CLASS_EMBEDDING, PITCH_CLASS_DENSE):  # folded into the exported weights
        if (layer := _layer(model, name)) is not None:
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    if (layer := _layer(model, INTERVAL_DENSE)) is not None:
        layer.set_weights([weights["interval_kernel"]])
