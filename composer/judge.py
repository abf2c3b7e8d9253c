"""Musical sanity for best-of-N: penalties (only their order between candidates matters) for melodies
that start late, hammer one note, stall, sprawl, leap wildly or stop on an unstable note."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from composer.keys import estimate_keys, stable_degrees
from composer.melody import Melody

#: The same pitch struck more often than this in a row starts to cost.
MAX_REPEATS = 4
#: A note or silence held longer than this many bars costs (or as long as the style's own tunes are still:
#: ``Representation.still_bars``).
MAX_STILL_BARS = 2
#: Semitones from lowest to highest note before it costs.
MAX_SPAN = 24
#: A leap wider than this (semitones) costs.
MAX_LEAP = 12
NO_NOTES = 5.0
REPEAT_COST = 0.1
STILL_COST = 0.5
SPAN_COST = 0.05
LEAP_COST = 0.1
#: More than a beat of silence before the first note (an anacrusis is not silence).
LATE_START_COST = 0.5
#: The last note struck off the bar's strong beats.
WEAK_ENDING_COST = 0.3
#: Ending on the third or fifth instead of the tonic; ending anywhere else.
NEAR_ENDING_COST, BAD_ENDING_COST = 0.3, 0.5


def longest_repeat(pitches: list[int]) -> int:
    """The longest run of one pitch struck again and again."""
    best = run = 0
    for i, pitch in enumerate(pitches):
        run = run + 1 if i and pitch == pitches[i - 1] else 1
        best = max(best, run)
    return best


def sanity_penalty(melody: Melody, tonic: int, minor: bool, max_still_bars: float = MAX_STILL_BARS) -> float:
    """How far the melody strays from simple sanity (0 for none), for a melody in the given key; a note
    or silence may last ``max_still_bars`` bars."""
    notes = melody.notes()
    if not notes:
        return NO_NOTES
    pitches = [pitch for pitch, _, _ in notes]
    penalty = REPEAT_COST * max(0, longest_repeat(pitches) - MAX_REPEATS)
    if melody.leading_rest_steps > melody.beat_steps:
        penalty += LATE_START_COST
    if melody.longest_still_bars > max_still_bars:
        penalty += STILL_COST
    penalty += SPAN_COST * max(0, max(pitches) - min(pitches) - MAX_SPAN)
    penalty += LEAP_COST * sum(abs(b - a) > MAX_LEAP for a, b in pairwise(pitches))
    home, third, fifth = stable_degrees(tonic, minor)
    last = pitches[-1] % 12
    if last != home:
        penalty += NEAR_ENDING_COST if last in (third, fifth) else BAD_ENDING_COST
    if notes[-1][1] % melody.steps_per_bar not in melody.strong_positions:
        penalty += WEAK_ENDING_COST
    return penalty


def allowed_still_bars(style_still_bars: float | None) -> float:
    """How long a melody of a style may be still: as long as the style's own tunes are
    (``Representation.still_bars``), and at least ``MAX_STILL_BARS``."""
    return max(MAX_STILL_BARS, style_still_bars or 0.0)


def candidate_scores(melodies: list[Melody], max_still_bars: float = MAX_STILL_BARS) -> np.ndarray:
    """Best-of-N scores: minus each melody's sanity penalty in its own estimated key (the key a listener
    hears; judged in the key asked for, fewer melodies ended on a tonic a listener hears as one). The
    model's likelihood plays no part: best-of-N is rejection sampling, and among equally sane candidates
    the first drawn wins, so the choice keeps the model's own distribution. Preferring the likeliest
    candidates made melodies plainer (a held note is the likeliest step; folk 1.8 notes a bar against real
    tunes' 3.0); preferring those nearest the candidates' median likelihood made them easier to tell from
    real tunes than sanity alone (a classifier, 200 melodies a style: renaissance 76% -> 72%, folk 64% ->
    61%). Melodies of one length. A note or silence may last ``max_still_bars`` bars."""
    tonics, minors = estimate_keys(np.array([m.events for m in melodies]))
    return -np.array([sanity_penalty(m, t, k, max_still_bars)
                      for m, t, k in zip(melodies, tonics, minors, strict=True)])
