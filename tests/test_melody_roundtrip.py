"""Melody <-> tokens <-> MIDI round trips on real pieces, and the extraction path's choices."""

from __future__ import annotations

import io

import pretty_midi
import pytest

from composer.errors import MidiError
from composer.extract import melody_from_midi
from composer.melody import HOLD, REST, Melody, canonical
from composer.midi_writer import melody_to_midi
from composer.representation import Representation

REP = Representation(key_policy="written")


def _bach_melodies(count: int = 5) -> list[Melody]:
    from composer.corpus import _melody as from_dict
    from composer.corpus import _score_melodies, corpus_files

    out = []
    for path in corpus_files("classical")[:count]:
        found, _ = _score_melodies(str(path), all_parts=False)
        out += [from_dict(d) for d in found]
    return out


@pytest.fixture(scope="module")
def real_melodies() -> list[Melody]:
    return _bach_melodies()


def test_tokens_midi_tokens_is_identity(real_melodies: list[Melody]) -> None:
    assert real_melodies
    assert any(m.pickup_steps for m in real_melodies)  # chorales open with an anacrusis
    for melody in real_melodies:
        tokens, undo, _ = REP.encode(melody)
        again = melody_from_midi(melody_to_midi(REP.decode(tokens, undo, melody)))
        assert REP.encode(again)[0].tolist() == tokens.tolist()
        assert again.time_signature == melody.time_signature
        assert again.tempo_bpm == pytest.approx(melody.tempo_bpm, abs=0.01)


@pytest.mark.parametrize("policy", ["written", "normalise"])
def test_melody_tokens_melody_survives(real_melodies: list[Melody], policy: str) -> None:
    rep = Representation(key_policy=policy)
    for melody in real_melodies:
        assert rep.decode(*rep.encode(melody)[:2], like=melody) == melody


def test_canonical_spelling() -> None:
    assert canonical([HOLD, 60, REST, REST, HOLD, 62]) == [REST, 60, REST, HOLD, HOLD, 62]


def test_fold_shifts_by_octaves() -> None:
    low = Melody((36, HOLD, 40, HOLD), (1, 4))
    assert REP.fold(low).pitches() == [48, 52]  # as little as it takes
    assert Representation(fold_policy="centre").fold(low).pitches() == [60, 64]


def test_fold_keeps_the_register_of_a_melody_in_range() -> None:
    high = Melody((76, HOLD, 83, 79), (3, 4))
    assert REP.fold(high) == high
    assert Representation(fold_policy="centre").fold(high).pitches() == [64, 71, 67]


def test_configs_without_a_fold_policy_centre() -> None:
    old = Representation().to_config()
    del old["fold_policy"]
    assert Representation.from_config(old).fold_policy == "centre"
    assert Representation.from_config(Representation().to_config()) == Representation()


def _midi(*instruments: pretty_midi.Instrument, ts: tuple[int, int] = (3, 4)) -> bytes:
    pm = pretty_midi.PrettyMIDI(initial_tempo=90)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(*ts, 0))
    pm.instruments.extend(instruments)
    buffer = io.BytesIO()
    pm.write(buffer)
    return buffer.getvalue()


def _instrument(pitches: list[int], program: int = 0, is_drum: bool = False, step: float = 0.5,
                length: float = 0.5) -> pretty_midi.Instrument:
    inst = pretty_midi.Instrument(program, is_drum=is_drum)
    for i, p in enumerate(pitches):
        inst.notes.append(pretty_midi.Note(90, p, i * step, i * step + length))
    return inst


def test_picks_melody_over_bass_and_drums_and_takes_top_line() -> None:
    # 90 bpm: a quarter is 2/3 s; 1/3 s notes are eighths (2 steps).
    eighth = 60 / 90 / 2
    melody = _instrument([72, 74, 76, 77, 79, 77, 76, 74], program=73, step=eighth, length=eighth)
    chords = pretty_midi.Instrument(0)
    for i in range(4):
        for p in (60, 64, 67):
            chords.notes.append(pretty_midi.Note(80, p, i * 2 * eighth, (i + 1) * 2 * eighth))
    bass = _instrument([36, 38, 40, 41], program=32, step=2 * eighth, length=2 * eighth)
    drums = _instrument([36, 38] * 8, is_drum=True, step=eighth / 2, length=0.1)
    result = melody_from_midi(_midi(bass, drums, chords, melody))
    assert result.pitches() == [72, 74, 76, 77, 79, 77, 76, 74]
    assert result.program == 73
    assert result.time_signature == (3, 4)
    assert result.tempo_bpm == pytest.approx(90)
    assert result.n_steps % result.steps_per_bar == 0


def test_top_line_of_chords() -> None:
    chords = pretty_midi.Instrument(0)
    for i, top in enumerate((67, 69, 71)):
        for p in (top - 7, top - 3, top):
            chords.notes.append(pretty_midi.Note(80, p, i * 2 / 3, (i + 1) * 2 / 3))
    assert melody_from_midi(_midi(chords)).pitches() == [67, 69, 71]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"hello, this is not music", "not_midi"),
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01", "corrupt"),
        (_midi(), "no_notes"),
        (_midi(_instrument([36, 38, 42], is_drum=True)), "drums_only"),
        (b"MThd" + b"\x00" * (3 * 1024 * 1024), "too_large"),
    ],
)
def test_bad_files_raise_typed_errors(data: bytes, code: str) -> None:
    with pytest.raises(MidiError) as caught:
        melody_from_midi(data)
    assert caught.value.code == code
