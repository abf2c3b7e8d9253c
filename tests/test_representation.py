"""The representation: one object turns melodies into model inputs and back, for training and compose."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
from conftest import UNTRAINED_STYLES, write_untrained_model

from composer.compose import ComposeRequest, RequestError, compose, parse_key, parse_metre
from composer.dataset import split_pieces, tune_signature
from composer.extract import melody_from_midi
from composer.keys import MODES, estimate_keys, estimate_mode
from composer.melody import HOLD, REST, Melody
from composer.midi_writer import melody_to_pretty_midi, pickup_signature
from composer.model_store import ModelLibrary
from composer.representation import (
    END,
    FIRST_PITCH_ID,
    HOLD_ID,
    NO_PITCH_CLASS,
    REST_ID,
    START,
    Representation,
    Undo,
    corpus_span,
)

MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11, 12, 11, 9, 7, 5, 4, 2, 0)
MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10, 12, 10, 8, 7, 5, 3, 2, 0)
REP = Representation(metres=((4, 4), (3, 4)), metre_counts=(5, 2))


def _scale(tonic: int, steps: tuple[int, ...] = MAJOR_STEPS, length: int = 2, ts=(4, 4)) -> Melody:
    return Melody(tuple(e for s in steps for e in (tonic + s, *(HOLD,) * (length - 1))), ts)


@pytest.fixture(scope="module")
def library(untrained_models_dir: Path) -> ModelLibrary:
    return ModelLibrary(untrained_models_dir)


@pytest.mark.parametrize(("tonic", "steps", "home"), [
    (60, MAJOR_STEPS, 0), (67, MAJOR_STEPS, 0), (62, MAJOR_STEPS, 0), (66, MAJOR_STEPS, 0),
    (69, MINOR_STEPS, 9), (64, MINOR_STEPS, 9), (62, MINOR_STEPS, 9),
])
def test_normalise_moves_to_c_major_or_a_minor_and_undo_moves_back(tonic, steps, home) -> None:
    melody = _scale(tonic, steps)
    moved, undo, mode = REP.normalise(melody)
    (found,), _ = estimate_keys(np.array([moved.events]))
    assert found == home and mode == ("minor" if home == 9 else "major")
    assert moved.transposed(undo.shift) == melody
    ids, undo2, control = REP.encode(melody)
    assert REP.decode(ids, undo2, melody) == melody
    assert control == REP.control((4, 4), mode)


def test_a_sampled_melody_goes_to_its_key_the_way_nearest_the_corpus_register() -> None:
    fiddle = Representation(register=72.0)  # celtic tunes sit around C5
    low = _scale(55)  # G3..G4 in C: a G major tune that normalise folded an octave down
    assert fiddle.shift_to_key(7, False, low) == Undo(7)  # D4..D5, not D3..D4 the short way down
    high = _scale(67)  # G4..G5: the short way, down to D4..D5
    assert fiddle.shift_to_key(7, False, high) == Undo(-5)
    assert fiddle.shift_to_key(7, False) == Undo(-5)  # no melody: the short way
    assert Representation().shift_to_key(7, False, low) == Undo(-5)  # no register (older models)
    assert Representation(key_policy="written", register=72.0).shift_to_key(7, False, low) == Undo(0)


def test_written_keys_are_kept() -> None:
    rep = Representation(key_policy="written")
    melody = _scale(62)
    moved, undo, _ = rep.normalise(melody)
    assert moved == melody and undo == Undo(0)


def test_a_hold_carries_its_pitch_into_the_next_input() -> None:
    ids = np.array([FIRST_PITCH_ID + 3, HOLD_ID, HOLD_ID, REST_ID, HOLD_ID, FIRST_PITCH_ID + 7, HOLD_ID, END])
    inputs = REP.sequence_inputs(ids)
    held = FIRST_PITCH_ID + 3 + REP.pitches
    assert inputs.tolist() == [START, FIRST_PITCH_ID + 3, held, held, REST_ID, HOLD_ID, FIRST_PITCH_ID + 7,
                               FIRST_PITCH_ID + 7 + REP.pitches]
    assert inputs.max() < REP.input_vocab_size
    # The sampler's step-by-step inputs are the same.
    sounding, stepped = np.array([-1]), [START]
    for token in ids[:-1]:
        stepped.append(int(REP.input_ids(np.array([token]), sounding)[0]))
        sounding = REP.next_sounding(np.array([token]), sounding)
    assert stepped == inputs.tolist()


def test_examples_count_bars_left_to_the_end_of_the_piece() -> None:
    melody = _scale(60, MAJOR_STEPS * 4, length=4)  # 60 notes of 4 steps: 15 bars of 4/4
    whole = REP.examples(melody, max_steps=1000)
    assert len(whole) == 1
    (example,) = whole
    assert example.bars_left[0] == 14 and example.bars_left[-2] == 0 and example.bars_left[-1] == 0
    assert example.targets[-1] == END and example.weights[-1] == 1
    assert example.positions.tolist()[:18] == [*range(16), 0, 1]
    cut = REP.examples(melody, max_steps=64)  # 4 bars a chunk
    assert [len(e.targets) for e in cut] == [65, 65, 65, 49]
    assert [e.bars_left[0] for e in cut] == [14, 10, 6, 2]
    assert [float(e.weights[-1]) for e in cut] == [0.0, 0.0, 0.0, 1.0]  # only the real end is an END
    long = REP.examples(_scale(60, MAJOR_STEPS * 8, length=4), max_steps=10_000)[0]
    assert long.bars_left.max() == REP.max_bars_left


def test_only_the_first_chunk_of_a_piece_starts_from_start() -> None:
    melody = _scale(60, MAJOR_STEPS * 4, length=6)  # notes held across the chunks' bar lines
    (whole,) = REP.examples(melody, max_steps=1000)
    cut = REP.examples(melody, max_steps=64)
    assert cut[0].tokens[0] == START and all(e.tokens[0] != START for e in cut[1:])
    # The chunks are the whole sequence cut up: each takes up the step before it, held pitch and all.
    def joined(field: str) -> list[int]:
        return np.concatenate([getattr(e, field)[:-1] for e in cut[:-1]] + [getattr(cut[-1], field)]).tolist()

    assert joined("tokens") == whole.tokens.tolist() and joined("targets") == whole.targets.tolist()


def test_fold_never_refuses_a_wide_melody() -> None:
    wide = Melody((20, HOLD, 60, HOLD, 110, HOLD, 72, HOLD), (2, 4))
    folded = REP.fold(wide)
    assert all(REP.low_pitch <= p <= REP.high_pitch for p in folded.pitches())
    assert [p % 12 for p in folded.pitches()] == [p % 12 for p in wide.pitches()]


def test_identical_tunes_stay_on_one_side_of_the_split() -> None:
    tunes = [_scale(60 + k, MAJOR_STEPS[: 8 + k % 7]) for k in range(40)]
    twins = [t.transposed(2) for t in tunes[:20]]  # the same tunes again, in other keys
    split = split_pieces(tunes + twins)
    side = {}
    for name, part in (("train", split.train), ("validation", split.validation), ("test", split.test)):
        for melody in part:
            side.setdefault(tune_signature(melody), set()).add(name)
    assert all(len(names) == 1 for names in side.values())
    assert len(split.validation) >= 4 and len(split.test) >= 4


def test_for_corpus_keeps_common_metres_and_counts_keys() -> None:
    corpus = [_scale(60)] * 30 + [_scale(62, ts=(3, 4))] * 10 + [_scale(69, MINOR_STEPS, ts=(5, 4))]
    rep = Representation.for_corpus(corpus)
    assert rep.metres == ((4, 4), (3, 4)) and rep.metre_counts == (30, 10)
    assert rep.key_counts[0] == 30 and rep.key_counts[2] == 10 and rep.key_counts[12 + 9] == 1
    assert rep.control((5, 4), "minor") == 1 and rep.control((3, 4), "major") == 4
    assert rep.control((3, 4), "dorian") == 5  # a mode the corpus was not parted by: its family
    assert rep.modes == ("major", "minor") and rep.mode_counts == (40, 1) and rep.bands == 1
    means = [np.mean(m.pitches()) for m in corpus]
    assert rep.register == pytest.approx(np.mean(means), abs=0.01)
    assert Representation.from_config(rep.to_config()) == rep
    assert rep.still_bars is None  # no melody as long as half a 16-bar window
    held = Melody((60,) + (HOLD,) * 47 + (62,) + (HOLD,) * 15 + (64, HOLD) * 56, (4, 4))  # 11 bars
    assert Representation.for_corpus([held] * 5 + corpus).still_bars == 3.0  # its three-bar note
    assert rep.span == 12  # every scale spans an octave
    wide = Melody((48, 84), (4, 4))
    assert Representation.for_corpus([*corpus * 3, wide]).span == 12  # one melody in 124 spans 3 octaves
    assert Representation.for_corpus([*corpus, wide]).span == 36  # one in 42: more than 1% of them
    assert corpus_span([Melody((REST, HOLD), (4, 4))]) is None  # no notes
    old = rep.to_config()
    del old["span"]
    assert Representation.from_config(old).span is None  # configs made before it: no bound
    short = Representation.for_corpus(corpus, max_bars_left=8)
    assert short.max_bars_left == 8 and Representation.from_config(short.to_config()) == short
    assert short.bars_left(np.arange(0, 40 * 16, 16), 16, 40).tolist() == [8] * 32 + list(range(7, -1, -1))


@pytest.mark.parametrize(("text", "key"), [
    ("D minor", (2, "minor")), ("f#m", (6, "minor")), ("Bb major", (10, "major")), ("Eb", (3, "major")),
    ("c# MINOR", (1, "minor")), ("D минор", (2, "minor")), ("A dorian", (9, "dorian")),
    ("g Mix", (7, "mixolydian")), ("E дорийский  лад", (4, "dorian")),
])
def test_parse_key(text: str, key: tuple[int, str]) -> None:
    assert parse_key(text) == key


@pytest.mark.parametrize("text", ["H", "D lydian", "", "minor", "12", "C#x"])
def test_parse_key_refuses(text: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_key(text)
    assert caught.value.code == "bad_key"


def test_parse_metre() -> None:
    assert parse_metre(" 6/8 ") == (6, 8)
    for bad in ("6/7", "x", "0/4", "3/4/4"):
        with pytest.raises(RequestError):
            parse_metre(bad)


def test_a_key_asked_for_moves_the_same_draw(library: ModelLibrary) -> None:
    c = compose(ComposeRequest("alpha", bars=4, seed=9, key="C major"), library).melody
    d = compose(ComposeRequest("alpha", bars=4, seed=9, key="D major"), library).melody
    assert c.key == "C major" and d.key == "D major"
    assert d.pitches() == [p + 2 for p in c.pitches()]  # no register in the fixture: the short way
    minor = compose(ComposeRequest("alpha", bars=4, seed=9, key="E minor"), library).melody
    assert minor.key == "E minor" and minor.pitches() != c.pitches()


def test_compose_moves_a_melody_to_its_key_towards_the_style_register(untrained_models_dir: Path,
                                                                      tmp_path: Path) -> None:
    def g_major(register: float) -> list[int]:
        folder = tmp_path / str(register) / "alpha"
        shutil.copytree(untrained_models_dir / "alpha", folder)
        config = json.loads((folder / "config.json").read_text())
        config["representation"]["register"] = register
        (folder / "config.json").write_text(json.dumps(config))
        library = ModelLibrary(folder.parent)
        return compose(ComposeRequest("alpha", bars=4, seed=9, key="G major"), library).melody.pitches()

    c = compose(ComposeRequest("alpha", bars=4, seed=9, key="C major"),
                ModelLibrary(untrained_models_dir)).melody.pitches()
    assert g_major(120.0) == [p + 7 for p in c]  # a high style: up a fifth
    assert g_major(0.0) == [p - 5 for p in c]  # a low one: down a fourth


def test_a_metre_asked_for_is_played_and_an_unknown_one_named(library: ModelLibrary) -> None:
    waltz = compose(ComposeRequest("alpha", bars=5, seed=2, metre="3/4"), library).melody
    assert waltz.time_signature == (3, 4) and waltz.n_steps == 5 * 12
    with pytest.raises(RequestError) as caught:
        compose(ComposeRequest("alpha", bars=5, seed=2, metre="6/8"), library)
    assert caught.value.code == "unknown_metre" and "4/4, 3/4" in str(caught.value)


def test_without_a_request_keys_and_metres_come_from_the_corpus(library: ModelLibrary) -> None:
    drawn = [compose(ComposeRequest("alpha", bars=2, seed=s), library).melody for s in range(30)]
    # The fixture's corpus: keys C, D, F, G major and A minor; metres 4/4 (2 parts) and 3/4 (1 part).
    assert {m.key for m in drawn} <= {"C major", "D major", "F major", "G major", "A minor"}
    assert len({m.key for m in drawn}) >= 3
    assert {m.time_signature for m in drawn} == {(4, 4), (3, 4)}


def test_no_piece_opens_with_more_than_a_beat_of_silence(library: ModelLibrary) -> None:
    for seed in range(12):
        for style in ("alpha", "gamma"):
            melody = compose(ComposeRequest(style, bars=4, seed=seed, temperature=1.5), library).melody
            assert melody.first_onset is not None and melody.first_onset < melody.steps_per_bar


def test_an_anacrusis_is_written_as_a_short_first_bar() -> None:
    melody = Melody((REST, *(HOLD,) * 11, 67, HOLD, 69, HOLD, *(72, HOLD, HOLD, HOLD) * 4), (4, 4))
    assert melody.pickup_steps == 4 and melody.leading_rest_steps == 0
    pm = melody_to_pretty_midi(melody)
    assert [(ts.numerator, ts.denominator) for ts in pm.time_signature_changes] == [(1, 4), (4, 4)]
    assert pm.instruments[0].notes[0].start == 0.0
    assert pickup_signature(6) == (3, 8) and pickup_signature(3) == (3, 16)
    late = Melody((REST, *(HOLD,) * 5, 67, *(HOLD,) * 9), (4, 4))  # 6 steps of rest: no pickup
    assert late.pickup_steps == 0 and late.leading_rest_steps == 6


def _test_primitive_midi() -> list[Path]:
    import music21

    return sorted((Path(music21.__file__).parent / "midi" / "testPrimitive").glob("*.mid"))


def test_every_music21_test_midi_with_notes_gets_a_continuation(library: ModelLibrary) -> None:
    files = _test_primitive_midi()
    assert len(files) >= 10
    continued = 0
    for path in files:
        try:
            primer = melody_from_midi(path)
        except Exception as exc:  # a file with no notes is refused with a typed error, nothing else
            assert getattr(exc, "code", None) in ("no_notes", "drums_only"), (path.name, exc)
            continue
        if primer.steps_per_bar > REP.max_positions:
            continue
        composition = compose(ComposeRequest("alpha", bars=2, seed=1, primer=primer), library)
        assert composition.melody.n_steps > composition.primer_steps
        continued += 1
    assert continued >= 10


def test_pitch_classes_of_struck_and_held_ids_agree() -> None:
    rep = Representation(low_pitch=50, high_pitch=80)
    targets, inputs = rep.pitch_classes(inputs=False), rep.pitch_classes(inputs=True)
    assert len(targets) == rep.vocab_size and len(inputs) == rep.input_vocab_size
    pitch_ids = np.arange(FIRST_PITCH_ID, rep.vocab_size)
    np.testing.assert_array_equal(targets[pitch_ids], (pitch_ids - FIRST_PITCH_ID + 50) % 12)
    held = rep.input_ids(np.full(len(pitch_ids), HOLD_ID), pitch_ids)  # "this pitch goes on"
    np.testing.assert_array_equal(inputs[held], targets[pitch_ids])
    np.testing.assert_array_equal(inputs[pitch_ids], targets[pitch_ids])
    assert set(targets[:FIRST_PITCH_ID]) == set(inputs[:FIRST_PITCH_ID]) == {NO_PITCH_CLASS}
    assert targets[rep.event_ids(np.array([62]))[0]] == 2  # D


@pytest.mark.parametrize(("metre", "half_beat"), [((4, 4), 2), ((3, 4), 2), ((2, 2), 4), ((4, 2), 4),
                                                  ((6, 8), 2), ((9, 8), 2), ((3, 8), 1), ((9, 16), 1)])
def test_half_beat_steps(metre: tuple[int, int], half_beat: int) -> None:
    assert Melody((), metre).half_beat_steps == half_beat


# --- modes and register bands ---------------------------------------------------------------------

#: Tunes that dwell on their tonic triad and sound the flattened seventh (mixolydian) or the major
#: sixth of a minor key (dorian); their scales alone are those of C major.
MIXOLYDIAN_STEPS = (0, 4, 7, 0, 10, 7, 0, 4, 0, 2, 0)
DORIAN_STEPS = (0, 3, 7, 0, 9, 7, 0, 3, 0, 2, 0)


def test_modes_are_found_counted_and_each_its_own_control() -> None:
    assert estimate_mode(np.array(_scale(67, MIXOLYDIAN_STEPS).events)) == (7, "mixolydian")
    assert estimate_mode(np.array(_scale(69, DORIAN_STEPS).events)) == (9, "dorian")
    assert estimate_mode(np.array(_scale(62).events)) == (2, "major")
    corpus = ([_scale(60)] * 6 + [_scale(67, MIXOLYDIAN_STEPS)] * 3 + [_scale(62, DORIAN_STEPS)] * 2
              + [_scale(69, MINOR_STEPS)])
    rep = Representation.for_corpus(corpus, modes=MODES)
    assert rep.mode_counts == (6, 1, 3, 2) and rep.controls == 2 * 4
    assert len({rep.control((4, 4), mode) for mode in MODES}) == 4
    assert rep.encode(_scale(67, MIXOLYDIAN_STEPS))[2] == rep.control((4, 4), "mixolydian")
    plain = Representation.for_corpus(corpus)  # major and minor only: a mixolydian tune is major
    assert plain.encode(_scale(67, MIXOLYDIAN_STEPS))[2] == plain.control((4, 4), "major")
    # Drawn within the family a key was drawn in, as often as the corpus has each mode.
    assert rep.mode_weights(False).tolist() == [6, 0, 3, 0]
    assert rep.mode_weights(True).tolist() == [0, 1, 0, 2]
    assert Representation().mode_weights(True).tolist() == [0, 1]  # configs without mode counts
    assert Representation.from_config(rep.to_config()) == rep
    with pytest.raises(ValueError):
        Representation(modes=("major", "dorian"))


def test_register_bands_part_the_corpus_and_place_a_melody_by_its_band() -> None:
    corpus = [_scale(48)] * 4 + [_scale(60)] * 4 + [_scale(72)] * 4
    rep = Representation.for_corpus(corpus, register_bands=3)
    assert rep.bands == 3 and rep.band_counts == (4, 4, 4) and rep.controls == 2 * 2 * 3
    assert rep.band_registers == pytest.approx([np.mean(_scale(t).pitches()) for t in (48, 60, 72)], abs=0.01)
    assert [rep.band_of(rep.normalise(m)[0]) for m in (_scale(48), _scale(60), _scale(72))] == [0, 1, 2]
    assert len({rep.control((4, 4), "major", band) for band in range(3)}) == 3
    assert rep.control((4, 4), "major", 7) == rep.control((4, 4), "major", 2)  # past the last: the last
    assert Representation().control((4, 4), "major", 2) == Representation().control((4, 4), "major")
    # A melody sampled in C goes to G the way nearest its band's register: down for the low band.
    melody = _scale(60)
    assert rep.shift_to_key(7, False, melody, band=0) == Undo(-5)
    assert rep.shift_to_key(7, False, melody, band=2) == Undo(7)
    assert Representation.from_config(rep.to_config()) == rep
    old = rep.to_config()
    for name in ("modes", "mode_counts", "register_edges", "band_counts", "band_registers"):
        del old[name]
    before = Representation.from_config(old)
    assert before.bands == 1 and before.modes == ("major", "minor") and before.controls == rep.controls // 3


def test_a_mode_is_played_where_the_style_has_it_and_named_where_not(library: ModelLibrary,
                                                                     tmp_path: Path) -> None:
    with pytest.raises(RequestError) as caught:
        compose(ComposeRequest("alpha", bars=2, seed=1, key="A dorian"), library)
    assert caught.value.code == "unknown_mode" and caught.value.fields["modes"] == "major, minor"
    write_untrained_model(tmp_path / "modal", UNTRAINED_STYLES["alpha"], modes=MODES,
                          mode_counts=(3, 2, 2, 1), register_edges=(60.0,), band_counts=(1, 1),
                          band_registers=(55.0, 70.0))
    modal = ModelLibrary(tmp_path)
    dorian = compose(ComposeRequest("modal", bars=2, seed=1, key="A dorian"), modal)
    assert dorian.melody.key == "A dorian" and "A dorian" in dorian.description()
    signatures = melody_to_pretty_midi(dorian.melody).key_signature_changes
    assert [pretty_midi.key_number_to_key_name(k.key_number) for k in signatures] == ["G Major"]
    drawn = {compose(ComposeRequest("modal", bars=1, seed=s), modal).melody.key.split()[1] for s in range(40)}
    assert drawn == set(MODES)  # the corpus's modes, drawn by the seed


def test_register_bands_of_a_corpus_with_fewer_registers_and_a_style_mixed_in() -> None:
    one_register = Representation.for_corpus([_scale(60)] * 6 + [_scale(72)] * 2, register_bands=4)
    assert one_register.bands == 2 and one_register.band_counts == (6, 2)  # no empty band, no NaN
    assert Representation.from_config(one_register.to_config()) == one_register
    assert Representation.for_corpus([_scale(60)] * 5, register_bands=3).bands == 1
    with pytest.raises(ValueError):
        Representation.for_corpus([_scale(60)] * 5, register_bands=0)
    with pytest.raises(ValueError):
        Representation(modes=("major", "minor", "dorian", "dorian"))
    rep = Representation.for_corpus([_scale(48)] * 4 + [_scale(60)] * 4 + [_scale(72)] * 4, register_bands=3)
    assert [rep.band_near(r) for r in (40.0, 66.0, 90.0, None)] == [0, 1, 2, 1]
    assert Representation().band_near(40.0) == 0


def test_a_style_with_bands_mixed_into_one_without_takes_the_band_nearest_its_register(
        library: ModelLibrary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import composer.compose as compose_module

    shutil.copytree(library.models_dir / "alpha", tmp_path / "alpha")
    config = json.loads((tmp_path / "alpha" / "config.json").read_text())
    config["representation"]["register"] = 79.0  # a high style leads
    (tmp_path / "alpha" / "config.json").write_text(json.dumps(config))
    write_untrained_model(tmp_path / "banded", UNTRAINED_STYLES["alpha"], register_edges=(60.0, 70.0),
                          band_counts=(1, 1, 1), band_registers=(50.0, 65.0, 80.0))
    controls = []
    real_sample = compose_module.sample
    monkeypatch.setattr(compose_module, "sample",
                        lambda *a, **k: controls.append(list(k["controls"])) or real_sample(*a, **k))
    both = ModelLibrary(tmp_path)
    composed = compose(ComposeRequest("alpha:0.6,banded:0.4", bars=1, seed=3, key="C major"), both)
    metre = composed.melody.time_signature
    alpha, banded = (both.get(name).info.representation for name in ("alpha", "banded"))
    assert controls == [[alpha.control(metre, "major"), banded.control(metre, "major", 2)]]  # the top band
