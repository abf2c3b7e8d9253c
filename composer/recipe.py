"""How a style model is trained: the one home of the training hyper-parameters (no TensorFlow here).

The architecture's defaults live in ``composer.lstm.ModelConfig``; a recipe overrides its width,
depth, dropout and pitch-class sharing. Each built-in style's recipe is in ``composer.styles``; ``make
train-all`` trains them all.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    units: int = 160
    layers: int = 2
    dropout: float = 0.15
    #: ``ModelConfig.pitch_class_sharing``: octave-equivalent terms in the embedding and output layer.
    pitch_class_sharing: bool = False
    #: ``ModelConfig.interval_terms``: a term per interval from the sounding pitch in the output layer.
    interval_terms: bool = False
    batch_size: int = 64
    learning_rate: float = 3e-3
    max_epochs: int = 30
    #: Epochs without a better validation loss before training stops (the best weights are kept).
    patience: int = 2
    #: Training steps an epoch to aim for, by repeating (and with keys as written, transposing) pieces.
    target_tokens: int = 1_000_000
    #: Wall-clock budget: no epoch starts that would end past it.
    max_minutes: float = 28.0
    seed: int = 7
    #: ``normalise``: every piece in C major / A minor, the mode an input; ``written``: keys as written.
    key_policy: str = "normalise"
    #: CPU threads TensorFlow may use (two styles can train side by side on the 2-core machine).
    threads: int = 1
    #: Bars-left input cap: "this many bars or more to go". A cap below the corpus's usual tune length
    #: keeps the opening of a 16-bar piece like the opening of a 40-bar tune; at 16, fiddle tunes (most
    #: longer than 17 bars) always began at "16 or more", a 16-bar piece began at 15, where the model had
    #: seen the middles of tunes: 2% of its pieces opened with a pickup against 74% of real tunes. (Folk
    #: at 8 opened 88% of its pieces with a pickup against 71% of real tunes, and wrote busier bars.)
    max_bars_left: int = 16
    #: The control's modes (``composer.keys.MODES``): beyond major and minor, mixolydian and dorian for
    #: a corpus that has tunes in them.
    modes: tuple[str, ...] = ("major", "minor")
    #: Register bands of the control: the corpus parted by mean pitch into this many bands of as many
    #: pieces each (1: none).
    register_bands: int = 1
