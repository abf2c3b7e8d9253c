"""The harmoniser (``composer.harmony``), its training and checks (``composer.harmony_eval``), and the
arrangements under a melody (``composer.arrange``): MIDI tracks, chord symbols, the CLI and make_piece."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from composer.arrange import ACCOMPANIMENT_VELOCITY, PLANS, arrange, lead_style
from composer.cli import main
from composer.extract import melody_from_midi
from composer.harmony import (
    DEFAULT_MODEL_DIR,
    MODEL_FILE,
    N_QUALITIES,
    QUALITIES,
    Chord,
    HarmonyModel,
    fit,
    harmonise,
    label_beats,
    load_model,
    training_piece,
)
from composer.harmony_eval import chorale_checks, melody_checks, train_harmony
from composer.melody import HOLD, Melody
from composer.midi_writer import VELOCITY, melody_to_midi
from composer.model_store import ModelLibrary
from composer.score import melody_to_musicxml

# ------------------------------------------------------------------------------------------- fixtures

#: Test fixture, NOT the shipped model's data: tiny four-part "chorales" of textbook progressions
#: (relative root, quality) one chord per beat, in C major and A minor.
MAJOR_PROGRESSIONS = [[(0, "maj"), (5, "maj"), (7, "maj"), (0, "maj")],
                      [(0, "maj"), (9, "min"), (2, "min"), (7, "7"), (0, "maj")],
                      [(0, "maj"), (7, "maj"), (9, "min"), (5, "maj"), (7, "maj"), (0, "maj")],
                      [(0, "maj"), (2, "min"), (7, "maj"), (0, "maj"), (5, "maj"), (7, "7"), (0, "maj")]]
MINOR_PROGRESSIONS = [[(0, "min"), (5, "min"), (7, "maj"), (0, "min")],
                      [(0, "min"), (8, "maj"), (2, "dim"), (7, "7"), (0, "min")]]


def fixture_record(progression: list[tuple[int, str]], tonic: int, minor: bool, turn: int = 0) -> dict:
    """A four-part chorale record (as ``harmony_corpus`` parses them) of ``progression``, a chord a beat."""
    from composer.harmony import INTERVALS

    voices: list[list[list[int]]] = [[], [], [], []]
    for beat, (root, quality) in enumerate(progression):
        pcs = [(tonic + root + i) % 12 for i in INTERVALS[quality]]
        start, end = 4 * beat, 4 * beat + 4
        top = pcs[(beat + turn) % len(pcs)]
        parts = [(top, 67), (pcs[(beat + turn + 1) % 3], 60), (pcs[(beat + turn + 2) % 3], 52), (pcs[0], 40)]
        for v, (pc, low) in enumerate(parts):
            voices[v].append([low + (pc - low) % 12, start, end])
    return {"file": "fixture", "tonic": tonic, "minor": minor, "time_signature": [4, 4], "voices": voices}


def fixture_records() -> list[dict]:
    records = []
    for turn in range(3):
        for tonic in (0, 7, 2):
            records += [fixture_record(p, tonic, False, turn) for p in MAJOR_PROGRESSIONS]
            records += [fixture_record(p, (tonic + 9) % 12, True, turn) for p in MINOR_PROGRESSIONS]
    return records


@pytest.fixture(scope="module")
def tiny_model() -> HarmonyModel:
    return fit([training_piece(r) for r in fixture_records()], emission_weight=1.0, onset_penalty=4.0)


def tune(pitches: list[int], steps: int = 4, time_signature: tuple[int, int] = (4, 4), key: str = "C major",
         lead: int = 0) -> Melody:
    events: list[int] = [-1] + [HOLD] * (lead - 1) if lead else []
    for p in pitches:
        events += [p] + [HOLD] * (steps - 1)
    return Melody(tuple(events), time_signature=time_signature, key=key)


SCALE_TUNE = [60, 62, 64, 65, 67, 69, 71, 72]


# ---------------------------------------------------------------------------------------------- tests

def test_labels_name_triads_and_the_dominant_seventh() -> None:
    voices = [[(72, 0, 4), (71, 4, 8), (69, 8, 12)], [(67, 0, 4), (65, 4, 8), (64, 8, 12)],
              [(64, 0, 4), (62, 4, 8), (60, 8, 12)], [(48, 0, 4), (43, 4, 8), (45, 8, 12)]]
    labels = label_beats(voices, 12, 4)
    names = [Chord(0, 4, int(c) // N_QUALITIES, QUALITIES[int(c) % N_QUALITIES]).name() for c in labels]
    assert names == ["C", "G7", "Am"]


@pytest.mark.parametrize("which", ["tiny", "shipped"])
def test_a_scale_tune_ends_on_the_tonic_with_the_dominant_before_it(which: str,
                                                                    tiny_model: HarmonyModel) -> None:
    model = tiny_model if which == "tiny" else load_model()
    harmony = harmonise(tune(SCALE_TUNE), model)
    romans = [c.roman(harmony.tonic, harmony.minor) for c in harmony.chords]
    assert romans[-1] == "I"
    assert romans[-2] in ("V", "V7")
    assert harmony.chords[0].start == 0 and harmony.chords[-1].end == 32
    # and in another key, a minor one too
    moved = harmonise(tune([p + 2 for p in SCALE_TUNE], key="D major"), model)
    assert [c.name() for c in moved.chords[-2:]] in (["A", "D"], ["A7", "D"])
    minor = harmonise(tune([57, 59, 60, 62, 64, 65, 68, 69], key="A minor"), model)
    assert minor.chords[-1].root == 9
    assert minor.chords[-2].root == 4 and minor.chords[-2].quality in ("maj", "7")


def test_the_model_learns_its_data(tiny_model: HarmonyModel) -> None:
    # in the fixture the dominant (7 * 4 + maj) always goes to the tonic, on a bar line or a weak beat
    assert [int(tiny_model.log_trans[0, place, 7 * N_QUALITIES].argmax()) for place in (0, 2)] == [0, 0]
    assert int(tiny_model.log_final[0].argmax()) == 0 and int(tiny_model.log_final[1].argmax()) == 1
    # the melody's onset note is a chord tone far more often than not
    assert tiny_model.log_emit[0, 0, [0, 4, 7]].min() > tiny_model.log_emit[0, 0, [1, 2, 5, 11]].max()


@pytest.fixture(scope="module")
def composed(models_dir: Path) -> dict[str, list[Melody]]:
    from composer.compose import ComposeRequest, compose

    library = ModelLibrary(models_dir)
    if not library.styles():
        pytest.skip(f"no trained models in {models_dir}")
    return {s.name: [compose(ComposeRequest(style=s.name, bars=8, seed=seed), library).melody
                     for seed in range(3)] for s in library.styles()}


def test_strong_beat_melody_notes_are_chord_tones(composed: dict[str, list[Melody]]) -> None:
    for style, melodies in composed.items():
        if style not in PLANS or PLANS[style].texture == "drone":
            continue
        rows = [melody_checks(m, arrange(m, style)) for m in melodies]
        strong = sum(r["strong"] for r in rows)
        share = sum(r["strong_in_chord"] for r in rows) / strong
        assert strong > 10 and share >= 0.85, (style, share)


def test_midi_has_the_styles_tracks_under_the_melody(composed: dict[str, list[Melody]]) -> None:
    for style, melodies in composed.items():
        melody = melodies[0]
        arrangement = arrange(melody, style)
        pm = pretty_midi.PrettyMIDI(io.BytesIO(melody_to_midi(melody, arrangement.tracks)))
        expected = [melody.program, *PLANS[style].programs] if style in PLANS else [melody.program]
        assert [i.program for i in pm.instruments][: len(expected)] == expected, style
        assert pm.instruments[0].name == "Melody"
        # a piece sent back as a seed (or continued by its button) is read as its melody, not its chords
        assert melody_from_midi(melody_to_midi(melody, arrangement.tracks)).pitches() == melody.pitches()
        melody_start = min(n.start for n in pm.instruments[0].notes)
        for track in pm.instruments[1:]:
            assert track.notes, (style, track.name)
            assert max(n.velocity for n in track.notes) < VELOCITY
            assert min(n.start for n in track.notes) >= melody_start - 1e-6  # nothing before the tune


def test_chorale_voices_stay_under_the_melody_in_order(composed: dict[str, list[Melody]]) -> None:
    for style in ("classical", "renaissance"):
        for melody in composed.get(style, []):
            tracks = arrange(melody, style).tracks
            sounding = np.full((4, melody.n_steps), -1)
            for pitch, start, end in melody.notes():
                sounding[0, start:end] = pitch
            for v, track in enumerate(tracks, start=1):
                for pitch, start, end, _ in track.notes:
                    sounding[v, start:end] = pitch
            both = (sounding >= 0).all(axis=0)
            assert both.any()
            assert (np.diff(sounding[:, both], axis=0) <= 0).all(), style  # melody >= alto >= tenor >= bass


def test_the_score_has_chord_symbols() -> None:
    melody = tune(SCALE_TUNE)
    arrangement = arrange(melody, "classical")
    symbols = arrangement.symbols()
    xml = melody_to_musicxml(melody, "t", symbols)
    assert xml.count("<harmony") == len(symbols) >= 4
    assert "<root-step>G</root-step>" in xml
    assert "<harmony" not in melody_to_musicxml(melody, "t")


def test_a_pickup_keeps_its_short_bar_and_the_chords_start_with_it() -> None:
    melody = tune([67, 60, 62, 64, 65, 67, 65, 64, 62, 60], lead=12)  # a quarter-note anacrusis
    assert melody.pickup_steps == 4
    arrangement = arrange(melody, "folk")
    assert arrangement.harmony.chords[0].start == 12
    pm = pretty_midi.PrettyMIDI(io.BytesIO(melody_to_midi(melody, arrangement.tracks)))
    assert min(n.start for i in pm.instruments for n in i.notes) == 0.0
    assert len(pm.time_signature_changes) == 2  # the short first bar, then 4/4
    assert "<harmony" in melody_to_musicxml(melody, "t", arrangement.symbols())


def test_chinese_has_a_drone_and_no_functional_harmony() -> None:
    melody = tune([62, 64, 67, 69, 72, 69, 67, 64, 62, 62], key="D major")
    arrangement = arrange(melody, "chinese")
    assert arrangement.harmony is None and arrangement.symbols() == []
    assert [t.program for t in arrangement.tracks] == [48, 107]
    pitch_classes = {p % 12 for t in arrangement.tracks for p, *_ in t.notes}
    assert pitch_classes <= {p % 12 for p in melody.pitches()} | {(2 + 7) % 12}


def test_a_mix_takes_the_lead_styles_arrangement(untrained_models_dir: Path, models_dir: Path,
                                                 tmp_path: Path) -> None:
    assert lead_style({"celtic": 0.3, "folk": 0.7}) == "folk"
    assert lead_style({"classical": 0.5, "celtic": 0.5}) == "classical"
    if not ModelLibrary(models_dir).styles():
        pytest.skip("no trained models")
    out = tmp_path / "mix.mid"
    assert main(["--models", str(models_dir), "compose", "folk:0.7,celtic:0.3", "--bars", "4", "--seed", "1",
                 "--out", str(out)]) == 0
    programs = [i.program for i in pretty_midi.PrettyMIDI(str(out)).instruments]
    assert programs[1:] == list(PLANS["folk"].programs)


def test_accompaniment_off_gives_the_melody_alone(untrained_models_dir: Path, tmp_path: Path) -> None:
    models = ["--models", str(untrained_models_dir)]
    on, off = tmp_path / "on.mid", tmp_path / "off.mid"
    assert main([*models, "compose", "alpha", "--bars", "4", "--seed", "3", "--out", str(on)]) == 0
    assert main([*models, "compose", "alpha", "--bars", "4", "--seed", "3", "--no-accompaniment",
                 "--out", str(off)]) == 0
    assert len(pretty_midi.PrettyMIDI(str(off)).instruments) == 1
    with_chords = pretty_midi.PrettyMIDI(str(on)).instruments
    assert len(with_chords) == 3 and all(i.program == 0 for i in with_chords[1:])  # the default: piano


def test_make_piece_on_and_off(models_dir: Path) -> None:
    from composer.compose import ComposeRequest
    from composer.piece import make_piece

    library = ModelLibrary(models_dir)
    if "classical" not in {s.name for s in library.styles()}:
        pytest.skip("no classical model")
    primer = tune([67, 67, 69, 71, 72, 71, 69, 67], key="G major")
    request = ComposeRequest(style="classical", bars=2, seed=5)
    made = make_piece(request, library, primer=primer)
    assert made.accompaniment == "classical" and made.problems == ()
    instruments = pretty_midi.PrettyMIDI(io.BytesIO(made.midi)).instruments
    assert [i.program for i in instruments[1:]] == list(PLANS["classical"].programs)
    # the primer's bars are harmonised too: the accompaniment starts with the first note
    assert min(n.start for n in instruments[1].notes) == min(n.start for n in instruments[0].notes)
    assert made.ogg is not None and made.png is not None
    plain = make_piece(request, library, primer=primer, accompaniment=False)
    assert plain.accompaniment is None
    assert len(pretty_midi.PrettyMIDI(io.BytesIO(plain.midi)).instruments) == 1


def test_training_writes_a_card_and_a_model_no_style_library_lists(tmp_path: Path) -> None:
    cache, models = tmp_path / "cache", tmp_path / "models"
    cache.mkdir()
    from composer.harmony_corpus import CACHE_NAME, CACHE_VERSION

    (cache / CACHE_NAME).write_text(json.dumps({"version": CACHE_VERSION, "chorales": fixture_records()}))
    out = models / "_harmony" / "chorales"
    card = train_harmony(cache, out, "test")
    assert (out / MODEL_FILE).is_file() and (out / "README.md").is_file()
    assert json.loads((out / "card.json").read_text())["chorales"] == len(fixture_records())
    assert card["evaluation"]["accuracy"] > card["evaluation"]["baseline_accuracy"] - 0.2
    assert ModelLibrary(models).styles() == []
    assert list(models.glob("*/card.json")) == []  # style cards are models/*/card.json
    # the shipped one is where the code looks, and no style either
    assert (DEFAULT_MODEL_DIR / MODEL_FILE).is_file() and (DEFAULT_MODEL_DIR / "card.json").is_file()
    assert "_harmony" not in {s.name for s in ModelLibrary(DEFAULT_MODEL_DIR.parent.parent).styles()}


def test_chorale_checks_report_shares(tiny_model: HarmonyModel) -> None:
    result = chorale_checks(tiny_model, fixture_records()[:6])
    for key in ("accuracy", "baseline_accuracy", "triad_accuracy", "strong_chord_tones",
                "bach_strong_chord_tones"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["accuracy"] >= 0.5 and result["bach_strong_chord_tones"] == 1.0
    assert result["changes_per_bar"] > 0 and result["parallels_per_100"] >= 0


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    from composer.harmony import HarmonyError

    with pytest.raises(HarmonyError, match="train-harmony"):
        load_model(tmp_path / "none.npz")
    model = load_model()
    assert ACCOMPANIMENT_VELOCITY < VELOCITY and model.log_trans.shape[-1] == 48


@pytest.mark.parametrize("seed", range(4))
def test_any_melody_in_any_metre_gets_a_playable_arrangement(seed: int) -> None:
    import random

    from composer.melody import REST, canonical

    rng = random.Random(seed)
    for _ in range(8):
        ts = rng.choice([(4, 4), (3, 4), (6, 8), (2, 2), (4, 2), (5, 4), (7, 8), (9, 8), (12, 8)])
        spb = Melody((), time_signature=ts).steps_per_bar
        events: list[int] = []
        while len(events) < spb * 3:
            length = rng.choice([1, 2, 3, 4, 6, 8])
            events += ([REST] if rng.random() < 0.15 else [rng.randint(36, 96)]) + [HOLD] * (length - 1)
        if rng.random() < 0.5:  # a leading rest, sometimes an anacrusis
            lead = rng.randint(1, spb - 1)
            events[:lead] = [REST] + [HOLD] * (lead - 1)
        melody = Melody(tuple(canonical(events[: spb * 3])), time_signature=ts,
                        key=rng.choice([None, "F# minor", "Bb major"]))
        for style in [*PLANS, "custom"]:
            arrangement = arrange(melody, style)
            for track in arrangement.tracks:
                assert all(0 <= p <= 127 and 0 <= s < e <= melody.n_steps for p, s, e, _ in track.notes)
            if arrangement.harmony is not None:
                first = arrangement.harmony.chords[0].start
                assert first == melody.first_onset and arrangement.harmony.chords[-1].end == melody.n_steps
            pretty_midi.PrettyMIDI(io.BytesIO(melody_to_midi(melody, arrangement.tracks)))
