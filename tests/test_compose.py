"""compose(): controls, seeds, primer continuation, style mixes, best-of-N and bad requests."""

from __future__ import annotations

import json
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from conftest import UNTRAINED_STYLES, write_untrained_model

from composer.compose import ComposeRequest, Composition, RequestError, compose
from composer.errors import ComposerError, StyleError
from composer.extract import melody_from_midi
from composer.judge import allowed_still_bars, candidate_scores, sanity_penalty
from composer.keys import estimate_keys
from composer.melody import HOLD, REST, Melody
from composer.model_store import ModelLibrary, StyleInfo
from composer.sampler import DEFAULT_TOP_P


@pytest.fixture(scope="module")
def library(untrained_models_dir: Path) -> ModelLibrary:
    return ModelLibrary(untrained_models_dir)


def test_length_defaults_and_reproducible_seed(library: ModelLibrary) -> None:
    request = ComposeRequest(style="beta", bars=6, seed=11, metre="3/4")
    first = compose(request, library)
    assert first.melody.time_signature == (3, 4) and first.melody.n_steps == 6 * 12
    assert first.melody.program == 73 and first.melody.tempo_bpm == 110
    assert first.melody.key and first.primer_steps == 0 and first.seed == 11
    assert compose(request, library).melody == first.melody
    assert compose(replace(request, seed=12), library).melody != first.melody


def test_top_p_is_the_styles_unless_the_request_names_one(library: ModelLibrary) -> None:
    own = compose(ComposeRequest(style="gamma", bars=4, seed=5), library)  # its config says 0.3
    assert own.request.top_p == 0.3 and "top-p 0.3" in own.description()
    assert compose(ComposeRequest(style="gamma", bars=4, seed=5, top_p=0.3), library).melody == own.melody
    asked = compose(ComposeRequest(style="gamma", bars=4, seed=5, top_p=1.0), library)
    assert asked.request.top_p == 1.0 and asked.melody != own.melody
    assert compose(ComposeRequest(style="alpha", bars=2, seed=5), library).request.top_p == DEFAULT_TOP_P
    config = json.loads((library.models_dir / "gamma" / "config.json").read_text())
    with pytest.raises(ValueError, match=r"top_p 1\.5"):
        StyleInfo.from_config("gamma", {**config, "top_p": 1.5})


def test_random_seed_is_reported_and_reproduces(library: ModelLibrary) -> None:
    first = compose(ComposeRequest(style="alpha", bars=2), library)
    again = compose(replace(first.request, seed=first.seed), library)
    assert again.melody == first.melody


def test_instrument_tempo_and_midi(library: ModelLibrary) -> None:
    composition = compose(ComposeRequest(style="alpha", bars=4, tempo_bpm=72, instrument="cello", seed=1),
                          library)
    assert composition.melody.program == 42 and composition.melody.tempo_bpm == 72
    back = melody_from_midi(composition.midi_bytes())
    assert back.events == composition.melody.events and back.program == 42
    text = composition.description()
    assert "alpha" in text and "Cello" in text and "seed 1" in text


@pytest.mark.parametrize("style, mix", [
    ("alpha+beta", {"alpha": 0.5, "beta": 0.5}),
    ("alpha:0.7,gamma:0.3", {"alpha": 0.7, "gamma": 0.3}),
])
def test_style_mix(library: ModelLibrary, style: str, mix: dict[str, float]) -> None:
    composition = compose(ComposeRequest(style=style, bars=3, seed=2, metre="4/4"), library)
    assert composition.mix == pytest.approx(mix)
    assert composition.melody.n_steps == 3 * 16
    assert "%" in composition.description()


def _primer(pitch_offset: int = 0) -> Melody:
    bar = (60, HOLD, HOLD, HOLD, 64, HOLD, 67, HOLD, 72, HOLD, HOLD, HOLD)
    events = tuple(e + pitch_offset if e >= 0 else e for e in (*bar * 5, 67, HOLD, REST))
    return Melody(events, time_signature=(3, 4), tempo_bpm=84.0, program=0)


def test_primer_is_kept_and_continued_in_its_metre(library: ModelLibrary) -> None:
    primer = _primer()
    request = ComposeRequest(style="alpha", bars=4, seed=3, primer=primer, primer_bars=2)
    composition = compose(request, library)
    melody = composition.melody
    # Last two bars of the primer (the unfinished sixth bar padded), then 4 bars in 3/4 at its tempo.
    assert composition.primer_steps == 2 * 12
    assert melody.events[:24] == (*primer.events[48:60], 67, HOLD, REST, *(HOLD,) * 9)
    assert melody.time_signature == (3, 4) and melody.tempo_bpm == 84.0
    assert melody.n_steps == 24 + 4 * 12
    assert "after 2 bars of the primer" in composition.description()


def test_primer_out_of_model_range_is_shifted_back(library: ModelLibrary) -> None:
    primer = _primer(pitch_offset=36)  # 96..108: above the models' 48..84
    composition = compose(ComposeRequest(style="alpha", bars=4, seed=4, primer=primer, primer_bars=1,
                                         tempo_bpm=100), library)
    melody = composition.melody
    assert melody.events[:12] == (103, HOLD, REST, *(HOLD,) * 9)
    continuation = [e for e in melody.events[12:] if e >= 0]
    # The primer went down into the models' range by octaves, the continuation comes back up to it.
    # Two octaves down (as little as it takes, and at most a tritone for the key) into 48..84, so back up
    # by as much.
    assert continuation and min(continuation) >= 48 + 24 - 6 and max(continuation) <= 127
    assert melody.tempo_bpm == 100


def _score(composition: Composition) -> float:
    return float(candidate_scores([composition.melody])[0])


def test_best_of_n_scores_better_than_single_draws(library: ModelLibrary) -> None:
    seeds = range(1, 7)
    single = [_score(compose(ComposeRequest(style="gamma", bars=4, seed=s, candidates=1), library))
              for s in seeds]
    best = [_score(compose(ComposeRequest(style="gamma", bars=4, seed=s, candidates=8), library))
            for s in seeds]
    assert np.mean(best) > np.mean(single)


@pytest.mark.parametrize("changes, code", [
    ({"temperature": 0}, "bad_temperature"),
    ({"temperature": 7}, "bad_temperature"),
    ({"temperature": "banana"}, "bad_temperature"),
    ({"temperature": float("nan")}, "bad_temperature"),
    ({"bars": 0}, "bad_bars"),
    ({"bars": 2.5}, "bad_bars"),
    ({"bars": 65}, "bad_bars"),
    ({"top_p": 0.0}, "bad_top_p"),
    ({"top_p": 1.5}, "bad_top_p"),
    ({"tempo_bpm": 5}, "bad_tempo"),
    ({"seed": -1}, "bad_seed"),
    ({"seed": True}, "bad_seed"),
    ({"candidates": 0}, "bad_candidates"),
    ({"candidates": 17}, "bad_candidates"),
    ({"primer_bars": 0}, "bad_primer_bars"),
    ({"primer": "tune.mid"}, "bad_primer"),
    ({"instrument": "kazoo"}, "bad_instrument"),
    ({"instrument": 128}, "bad_instrument"),
    ({"style": "alpha+beta:0.5"}, "bad_mix"),
    ({"style": "alpha:-1,beta:2"}, "bad_mix"),
    ({"style": ""}, "bad_mix"),
    ({"style": None}, "bad_mix"),
])
def test_bad_requests_are_refused_with_a_code(changes: dict, code: str) -> None:
    with pytest.raises(ComposerError) as info:
        ComposeRequest(**changes)
    assert info.value.code == code


def test_unknown_style_and_empty_primer(library: ModelLibrary) -> None:
    with pytest.raises(StyleError) as info:
        compose(ComposeRequest(style="alpha+polka"), library)
    assert info.value.code == "unknown_style" and "alpha" in str(info.value)
    silent = Melody((REST,) + (HOLD,) * 15)
    with pytest.raises(RequestError) as info:
        compose(ComposeRequest(style="alpha", primer=silent), library)
    assert info.value.code == "bad_primer"


def test_trained_models_compose_sane_melodies(models_dir: Path) -> None:
    library = ModelLibrary(models_dir)
    styles = [s.name for s in library.styles()]
    if not styles:
        pytest.skip(f"no trained models in {models_dir}")
    for style in styles:
        composition = compose(ComposeRequest(style=style, seed=1, candidates=8), library)
        melody = composition.melody
        assert melody.n_bars == 16 and len(melody.notes()) >= 16
        (tonic,), (minor,) = estimate_keys(np.array([melody.events]))
        still = allowed_still_bars(library.get(style).info.representation.still_bars)
        assert sanity_penalty(melody, int(tonic), bool(minor), still) <= 0.5, (style, melody.notes())
        span = library.get(style).info.representation.span
        assert span is None or np.ptp(melody.pitches()) <= span, (style, melody.notes())


def test_a_melody_keeps_within_its_styles_span(library: ModelLibrary, tmp_path: Path) -> None:
    def spans(lib: ModelLibrary, style: str) -> list[int]:
        return [int(np.ptp(compose(ComposeRequest(style, bars=32, seed=seed), lib).melody.pitches()))
                for seed in range(6)]

    assert max(spans(library, "alpha")) > 7  # the untrained model, left alone, wanders wider
    write_untrained_model(tmp_path / "alpha", UNTRAINED_STYLES["alpha"], span=7)
    narrow = spans(ModelLibrary(tmp_path), "alpha")
    assert max(narrow) <= 7 and min(narrow) > 0


def test_best_of_n_keeps_the_first_drawn_of_equally_sane_candidates(library: ModelLibrary,
                                                                     monkeypatch) -> None:
    import composer.compose as compose_module

    seen: list[list[Melody]] = []

    def all_equally_sane(melodies, max_still_bars):
        seen.append(melodies)
        return np.zeros(len(melodies))

    monkeypatch.setattr(compose_module, "candidate_scores", all_equally_sane)
    melody = compose(ComposeRequest(style="gamma", bars=4, seed=3, candidates=8), library).melody
    first, others = seen[0][0], seen[0][1:]

    def shape(m: Melody) -> tuple:  # rhythm and intervals: the key it was moved to aside
        notes = m.notes()
        return tuple((s, e) for _, s, e in notes), tuple(b[0] - a[0] for a, b in pairwise(notes))

    assert shape(melody) == shape(first)
    assert any(shape(m) != shape(first) for m in others)
