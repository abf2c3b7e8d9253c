"""The built-in styles: where their training music comes from in the music21 corpus."""

from __future__ import annotations

from dataclasses import dataclass, field

from composer.recipe import Recipe
from composer.sampler import DEFAULT_TOP_P


@dataclass(frozen=True)
class Style:
    name: str
    description: str
    #: Path fragments (relative to music21's corpus folder) whose files make up the style.
    corpus_globs: tuple[str, ...]
    #: Take every part of a score (True) or only the top one (False).
    all_parts: bool = False
    #: At most this many files, taken in sorted order, to bound parsing time.
    max_files: int | None = None
    #: General MIDI program the style sounds best with.
    program: int = 0
    #: How its shipped model is trained.
    recipe: Recipe = field(default_factory=Recipe)
    #: The top-p it composes with when a request names none (written into the model's config).
    top_p: float = DEFAULT_TOP_P


BUILTIN_STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style("classical", "J. S. Bach: the top voice of chorales and other Bach", ("bach/*",), program=19),
        Style(
            "renaissance",
            "Palestrina's masses: flowing vocal lines, every voice",
            ("palestrina/*.krn",),
            all_parts=True,
            max_files=450,
            program=52,
            # Budget-bound (13 epochs, validation loss still falling) at the plateau schedule's constant
            # 3e-3: at 5e-3 test NLL 0.2257 -> 0.2235, pitch bits with repetition 2.30 -> 2.25 in the same
            # 13 epochs (real vs generated 70/74% -> 71/72%, seeds 0-199 and 1000-1199: no change).
            # Four register bands (basses to sopranos) as a control: test NLL 0.2235 -> 0.2176, pitch bits
            # with repetition 2.25 -> 2.19; generated bass-register pieces 4% -> 11% (real 15%); real vs
            # generated 71/72% -> 72/74% (noise). Interval terms: test NLL 0.2176 -> 0.2120, pitch bits with
            # repetition 2.19 -> 2.14, octave leaps predicted as often as they come (they were at a third of
            # it); real vs generated 72/74% -> 73/73%, MGEval 0.93 of its ceiling either way.
            recipe=Recipe(learning_rate=5e-3, register_bands=4, interval_terms=True),
        ),
        Style(
            "folk",
            "German folk songs from the Essen collection",
            tuple(
                f"essenFolksong/{n}.abc"
                for n in ("altdeu10", "altdeu20", "ballad10", "ballad20", "ballad30", "boehme10",
                          "boehme20", "dva0", "erk10", "erk20", "erk5", "fink0", "kinder0")
            ),
            program=21,
            # Still learning at 30 epochs (24 minutes); 36 fit the budget: test NLL 0.5165 -> 0.5112.
            # Pitch-class sharing and interval terms: test NLL 0.5112 -> 0.5005, pitch bits with repetition
            # 2.03 -> 1.95, real vs generated 61/60% -> 60/62% (seeds 0-199 and 1000-1199), MGEval 0.93 ->
            # 0.94 of its ceiling. (Pitch-class sharing alone: 1.96 bits, but 69/64% real vs generated;
            # interval terms alone: 2.05 bits.)
            recipe=Recipe(max_epochs=40, pitch_class_sharing=True, interval_terms=True),
        ),
        # Top-p 1: the pentatonic tunes' rarer pitches (E and B in C, semitone steps) were cut at 0.95, and
        # a classifier told generated from real 72% and 69% of the time at 0.95, 66% and 63% at 1 (200
        # melodies a side, seeds 0-199 and 1000-1199; MGEval mean overlap 0.90 of 0.96 either way).
        Style("chinese", "Chinese folk songs from the Essen collection (Han)",
              ("essenFolksong/han1.abc", "essenFolksong/han2.abc"), program=75, top_p=1.0),
        Style("celtic", "Irish and Scottish fiddle tunes: Ryan's Mammoth Collection, O'Neill's 1850",
              ("ryansMammoth/*.abc", "oneills1850/*.abc"), program=110,
              # Pitch-class sharing: test NLL 0.8852 -> 0.8694, pitch bits with repetition 1.66 -> 1.63, real
              # vs generated 70/75% -> 69/71% (seeds 0-199 and 1000-1199), MGEval 0.865 -> 0.874 of its
              # ceiling. Mixolydian and dorian as modes of their own (9% of the tunes): real vs generated
              # 69/71% -> 65/69%, MGEval 0.874 -> 0.882 of its ceiling, test NLL 0.8694 -> 0.8690.
              recipe=Recipe(max_bars_left=8, pitch_class_sharing=True,
                            modes=("major", "minor", "mixolydian", "dorian"))),
    )
}
