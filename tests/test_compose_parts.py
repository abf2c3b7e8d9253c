"""The parts compose() is built from: instruments, style mixes, key finding, sanity penalties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from composer.errors import StyleError
from composer.instruments import InstrumentError, instrument_name, program_for
from composer.judge import (
    BAD_ENDING_COST,
    LATE_START_COST,
    NO_NOTES,
    STILL_COST,
    WEAK_ENDING_COST,
    candidate_scores,
    sanity_penalty,
)
from composer.keys import estimate_keys, key_name
from composer.melody import HOLD, REST, Melody
from composer.style_mix import mix_label, parse_mix


@pytest.mark.parametrize("value, program", [
    (0, 0), ("41", 41), ("violin", 40), ("Church Organ", 19), ("church-organ", 19), ("FIDDLE", 110),
    ("harpsi", 6), ("pan flute", 75),
])
def test_program_for(value: str | int, program: int) -> None:
    assert program_for(value) == program


@pytest.mark.parametrize("value", [-1, 128, "kazoo", "", "piano x", True, "bass "])
def test_program_for_refuses(value: str | int) -> None:
    if value == "bass ":
        assert program_for(value) == 32  # an alias, not the many '... Bass' programs
        return
    with pytest.raises(InstrumentError):
        program_for(value)


def test_ambiguous_instrument_names_options() -> None:
    with pytest.raises(InstrumentError, match="ambiguous"):
        program_for("synth")
    assert instrument_name(110) == "Fiddle"


@pytest.mark.parametrize("text, mix", [
    ("classical", {"classical": 1.0}),
    (" Classical + Celtic ", {"classical": 0.5, "celtic": 0.5}),
    ("classical:0.7,celtic:0.3", {"classical": 0.7, "celtic": 0.3}),
    ("folk:3,chinese", {"folk": 0.75, "chinese": 0.25}),
])
def test_parse_mix(text: str, mix: dict[str, float]) -> None:
    assert parse_mix(text) == pytest.approx(mix)


@pytest.mark.parametrize("text", ["", "a+", "a:x", "a:0", "a:inf", "a+b:1", "a,a", "../x", "a,b,c,d,e,f"])
def test_parse_mix_refuses(text: str) -> None:
    with pytest.raises(StyleError) as info:
        parse_mix(text)
    assert info.value.code == "bad_mix"


@given(st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True),
                       st.floats(0.01, 100), min_size=1, max_size=5))
def test_mix_weights_sum_to_one(weights: dict[str, float]) -> None:
    mix = parse_mix(",".join(f"{k}:{v!r}" for k, v in weights.items()))
    assert list(mix) == list(weights) and sum(mix.values()) == pytest.approx(1.0)
    assert mix_label(mix).count("%") == (len(mix) if len(mix) > 1 else 0)


def _scale_tune(tonic: int, minor: bool) -> list[int]:
    steps = (0, 2, 3, 5, 7, 8, 10) if minor else (0, 2, 4, 5, 7, 9, 11)
    line = [60 + tonic + s for s in (*steps, 12, 7, 4 if not minor else 3, 0)]
    return [e for p in line for e in (p, HOLD, HOLD, HOLD)]


@pytest.mark.parametrize("tonic, minor", [(0, False), (7, False), (9, True), (2, True)])
def test_estimate_keys(tonic: int, minor: bool) -> None:
    (found,), (found_minor,) = estimate_keys(np.array([_scale_tune(tonic, minor)]))
    assert (found, found_minor) == (tonic, minor)
    assert key_name(found, found_minor) in {"C major", "G major", "A minor", "D minor"}


def test_sanity_penalties() -> None:
    good = Melody(tuple(_scale_tune(0, False)))
    assert sanity_penalty(good, 0, False) == 0.0
    off_key = Melody((*good.events[:-4], 62, HOLD, HOLD, HOLD))
    assert sanity_penalty(off_key, 0, False) == BAD_ENDING_COST
    hammered = Melody((64,) * 12 + good.events)
    assert sanity_penalty(hammered, 0, False) > 0.5
    stalled = Melody(good.events[:-4] + (REST,) + (HOLD,) * 40 + (60, HOLD, HOLD, HOLD))
    assert sanity_penalty(stalled, 0, False) > 0
    assert stalled.longest_still_bars == 45 / 16  # from the last note before the rest to the next
    # A style whose tunes rest that long: only the stillness goes unpunished.
    lenient = sanity_penalty(stalled, 0, False, max_still_bars=3)
    assert sanity_penalty(stalled, 0, False) - lenient == STILL_COST
    assert sanity_penalty(Melody((REST, HOLD)), 0, False) == NO_NOTES
    late = Melody((REST,) + (HOLD,) * 15 + good.events)
    assert sanity_penalty(late, 0, False) == LATE_START_COST
    pickup = Melody((REST,) + (HOLD,) * 11 + good.events)  # a one-beat anacrusis is no late start...
    assert sanity_penalty(pickup, 0, False) == WEAK_ENDING_COST  # ...but its last note falls on beat 2
    assert sanity_penalty(Melody((REST,) + (HOLD,) * 7 + good.events), 0, False) == 0.0


def test_candidate_scores_rank_by_sanity_alone() -> None:
    good = Melody(tuple(_scale_tune(0, False)))
    hammered = Melody((64, HOLD) * 8 + good.events[16:])
    assert candidate_scores([hammered, good]).argmax() == 1
    # Equally sane candidates score alike, so the first drawn wins (rejection sampling).
    late = Melody((REST,) + (HOLD,) * 15 + good.events[16:])
    scores = candidate_scores([late, good, good, hammered])
    assert scores[1] == scores[2] == 0.0 and scores.argmax() == 1
