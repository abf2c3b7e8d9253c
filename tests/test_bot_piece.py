"""``composer.piece.make_piece``: the one call the bot makes in its worker processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from composer import piece as piece_module
from composer.compose import ComposeRequest
from composer.errors import MidiError, RenderError
from composer.extract import melody_from_midi
from composer.model_store import ModelLibrary

FIXTURES = Path(__file__).parent / "fixtures" / "midi"


@pytest.fixture(scope="module")
def library(models_dir: Path) -> ModelLibrary:
    found = ModelLibrary(models_dir)
    if not found.styles():
        pytest.skip(f"no trained models in {models_dir}")
    return found


def test_a_piece_has_midi_audio_score_and_its_caption_data(library: ModelLibrary) -> None:
    style = library.styles()[0].name
    made = piece_module.make_piece(ComposeRequest(style=style, bars=4, temperature=0.8, seed=7), library)
    assert melody_from_midi(made.midi).pitches()
    assert made.ogg is not None and made.ogg.startswith(b"OggS")
    assert made.png is not None and made.png.startswith(b"\x89PNG")
    assert made.problems == ()
    assert made.mix == {style: 1.0} and made.seed == 7 and made.bars == 4 and made.temperature == 0.8
    assert made.primer is None and made.seconds > 0 and made.instrument


def test_a_seed_file_is_continued_and_described(library: ModelLibrary) -> None:
    data = (FIXTURES / "bach_bwv269.mid").read_bytes()
    made = piece_module.make_piece(ComposeRequest(style=library.styles()[0].name, bars=4), library,
                                   primer_midi=data)
    assert made.primer is not None
    assert made.primer.primer_bars == 4 and made.primer.time_signature == (3, 4)
    assert made.primer.total_bars == round(melody_from_midi(data).n_bars)
    assert made.bars == 4
    with pytest.raises(MidiError) as caught:
        piece_module.make_piece(ComposeRequest(style=library.styles()[0].name, bars=4), library,
                                primer_midi=b"not a midi file")
    assert caught.value.code == "not_midi"


def test_a_failed_renderer_leaves_the_rest(library: ModelLibrary, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> bytes:
        raise RenderError("fluidsynth is not installed", code="missing_tool")

    monkeypatch.setattr(piece_module, "render_ogg", broken)
    made = piece_module.make_piece(ComposeRequest(style=library.styles()[0].name, bars=4), library)
    assert made.ogg is None and made.png is not None and made.midi.startswith(b"MThd")
    assert made.problems == ("audio: fluidsynth is not installed",)


def _no_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the piece's length: skip the renderers."""
    def absent(*args: object, **kwargs: object) -> bytes:
        raise RenderError("not rendered in this test", code="missing_tool")

    monkeypatch.setattr(piece_module, "render_ogg", absent)
    monkeypatch.setattr(piece_module, "render_png", absent)


def test_a_piece_longer_than_the_cap_gets_fewer_bars(library: ModelLibrary,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10, fault 5: 64 bars at 40 bpm would be over 6 minutes of audio; the piece keeps as many
    bars as fit in ``MAX_PIECE_SECONDS`` and says it was cut."""
    _no_rendering(monkeypatch)
    made = piece_module.make_piece(ComposeRequest(style=library.styles()[0].name, bars=64, tempo_bpm=40,
                                                  seed=3), library)
    assert made.seconds <= piece_module.MAX_PIECE_SECONDS
    assert made.cut_from_bars == 64 and 1 <= made.bars < 64 and made.sped_up_from is None
    bar_seconds = made.seconds / made.bars
    assert made.seconds + bar_seconds > piece_module.MAX_PIECE_SECONDS  # no more bars would have fitted
    short = piece_module.make_piece(ComposeRequest(style=library.styles()[0].name, bars=4, seed=3), library)
    assert short.cut_from_bars is None and short.sped_up_from is None


def test_when_the_seed_alone_is_too_long_the_piece_is_played_faster(library: ModelLibrary,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _no_rendering(monkeypatch)
    data = (FIXTURES / "bach_bwv269.mid").read_bytes()
    made = piece_module.make_piece(ComposeRequest(style=library.styles()[0].name, bars=4, tempo_bpm=40),
                                   library, primer_midi=data, max_seconds=10.0)
    assert made.seconds <= 10.0
    assert made.sped_up_from is not None and made.tempo_bpm > made.sped_up_from
