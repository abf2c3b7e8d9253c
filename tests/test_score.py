"""Melody to sheet music: the MusicXML says the right things, the PNG decodes and suits a phone."""

from __future__ import annotations

import io
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from composer import score
from composer.errors import RenderError
from composer.melody import HOLD, REST, Melody
from composer.score import MAX_BARS, PAGE_WIDTH_PX, estimate_key, melody_to_musicxml, render_png


def run(pitch: int, steps: int) -> list[int]:
    return [pitch, *[HOLD] * (steps - 1)]


def tune(bars: int, key: str | None = "D major") -> Melody:
    """``bars`` bars of 4/4 in D major with quavers, semiquavers, ties over the bar line and rests."""
    phrase = [
        *run(62, 2), *run(66, 2), *run(69, 4), *run(74, 6), *run(73, 4),  # C# tied over the bar line
        *run(71, 1), *run(69, 1), *run(67, 2), *run(REST, 4), *run(66, 6),
    ]  # fmt: skip
    events = (phrase * bars)[: 16 * bars]
    return Melody(tuple(events), tempo_bpm=96.0, key=key)


def measures(xml: str) -> list[list[tuple[str, str, tuple[str, ...]]]]:
    """Per measure, each note as (pitch like "F#4" or "rest", type with a "." per dot, tie types)."""
    out = []
    for measure in ET.fromstring(xml).iter("measure"):
        notes = []
        for note in measure.iter("note"):
            if note.find("rest") is not None:
                name = "rest"
            else:
                alter = {"1": "#", "-1": "b", None: ""}[note.findtext("pitch/alter")]
                name = f"{note.findtext('pitch/step')}{alter}{note.findtext('pitch/octave')}"
            ties = tuple(t.get("type", "") for t in note.findall("tie"))
            kind = (note.findtext("type") or "") + "." * len(note.findall("dot"))
            notes.append((name, kind, ties))
        out.append(notes)
    return out


def decode(png: bytes) -> np.ndarray:
    Image.open(io.BytesIO(png)).verify()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def test_ties_over_bar_lines_and_rests() -> None:
    events = [*run(REST, 4), *run(67, 4), *run(REST, 4), *run(69, 8), *run(71, 12)]
    bars = measures(melody_to_musicxml(Melody(tuple(events), key="C major"), "t"))
    assert bars == [
        [
            ("rest", "quarter", ()),
            ("G4", "quarter", ()),
            ("rest", "quarter", ()),
            ("A4", "quarter", ("start",)),
        ],
        [("A4", "quarter", ("stop",)), ("B4", "half.", ())],
    ]
    phrase = measures(melody_to_musicxml(tune(2), "t"))
    assert phrase[0][-1] == ("C#5", "eighth", ("start",)) and phrase[1][0] == ("C#5", "eighth", ("stop",))
    assert ("rest", "quarter", ()) in phrase[1]


def test_header_has_title_key_metre_and_tempo() -> None:
    xml = melody_to_musicxml(tune(4), "Celtic: a reel")
    root = ET.fromstring(xml)
    titles = [root.findtext("work/work-title"), root.findtext("movement-title")]
    assert "Celtic: a reel" in titles
    assert root.findtext(".//attributes/key/fifths") == "2"
    assert (root.findtext(".//time/beats"), root.findtext(".//time/beat-type")) == ("4", "4")
    assert root.findtext(".//clef/sign") == "G"
    assert "♩ = 96" in [w.text for w in root.iter("words")]


def test_notes_are_spelt_in_the_key() -> None:
    f_major = Melody((*run(65, 4), *run(70, 4), *run(69, 4), *run(65, 4)), key="F major")
    assert [n[0] for n in measures(melody_to_musicxml(f_major, "t"))[0]] == ["F4", "Bb4", "A4", "F4"]
    a_minor = Melody((*run(69, 4), *run(68, 4), *run(69, 8)), key="A minor")
    assert [n[0] for n in measures(melody_to_musicxml(a_minor, "t"))[0]] == ["A4", "G#4", "A4"]


def test_key_is_estimated_when_the_melody_has_none() -> None:
    c_major = Melody(
        (*run(60, 4), *run(64, 2), *run(67, 2), *run(65, 2), *run(62, 2), *run(71, 2), *run(60, 4))
    )
    key = estimate_key(c_major)
    assert (key.tonic.name, key.mode) == ("C", "major")
    a_minor = Melody((*run(69, 4), *run(72, 2), *run(76, 2), *run(68, 2), *run(71, 2), *run(69, 4)))
    key = estimate_key(a_minor)
    assert (key.tonic.name, key.mode) == ("A", "minor")
    xml = melody_to_musicxml(a_minor, "t")
    assert ET.fromstring(xml).findtext(".//attributes/key/fifths") == "0"


def test_low_melodies_get_a_bass_clef() -> None:
    low = Melody((*run(43, 4), *run(47, 4), *run(50, 4), *run(43, 4)), key="G major")
    assert ET.fromstring(melody_to_musicxml(low, "t")).findtext(".//clef/sign") == "F"


def test_sixteen_bars_make_a_readable_png_on_white() -> None:
    pixels = decode(render_png(tune(16), "Folk — 16 bars"))
    height, width = pixels.shape[:2]
    assert width == PAGE_WIDTH_PX
    assert 400 < height < 1400  # four or five systems, a phone screen or two
    assert (pixels[..., 3] == 255).all(), "transparent pixels show badly in Telegram"
    assert (pixels[0, 0] == 255).all() and (pixels[-1, -1] == 255).all()
    ink = (pixels[..., :3].mean(axis=2) < 128).mean()
    assert 0.01 < ink < 0.2


def test_long_melodies_wrap_onto_more_systems() -> None:
    short = decode(render_png(tune(8), "short")).shape
    long = decode(render_png(tune(40), "long")).shape
    assert short[1] == long[1] == PAGE_WIDTH_PX
    assert long[0] > 3 * short[0] * 0.8


def test_very_long_melodies_are_cut_and_say_so() -> None:
    xml = melody_to_musicxml(tune(MAX_BARS + 16), "epic")
    assert len(measures(xml)) == MAX_BARS
    assert f"epic (bars 1–{MAX_BARS} of {MAX_BARS + 16})" in xml


@pytest.mark.parametrize("metre", [(3, 4), (6, 8), (2, 2)])
def test_other_metres_and_an_empty_melody_render(metre: tuple[int, int]) -> None:
    melody = Melody(tuple(run(67, 6) + run(REST, 6) + run(69, 12)), time_signature=metre)
    time = ET.fromstring(melody_to_musicxml(melody, "t")).find(".//time")
    assert time is not None
    assert (time.findtext("beats"), time.findtext("beat-type")) == (str(metre[0]), str(metre[1]))
    assert decode(render_png(melody, "t")).shape[1] == PAGE_WIDTH_PX
    assert decode(render_png(Melody((REST, *[HOLD] * 15)), "silence")).shape[1] == PAGE_WIDTH_PX


def test_threads_can_render_at_once() -> None:
    melodies = [tune(bars) for bars in (2, 8, 12)] * 3
    expected = [render_png(m, "t") for m in melodies]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(render_png, melodies, ["t"] * len(melodies))) == expected


def test_first_use_may_be_in_a_worker_thread() -> None:
    """Verovio sets its font path only in the importing thread; a fresh process proves the fix."""
    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from composer.melody import Melody\n"
        "from composer.score import render_png\n"
        "with ThreadPoolExecutor(1) as pool:\n"
        "    print(len(pool.submit(render_png, Melody((60, -2, 62, -2)), 't').result()))\n"
    )
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) > 1000


def test_missing_rasteriser_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(score.SUBPROCESS_ENV, "1")  # librsvg in this process, else rsvg-convert
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RenderError, match="apt-get install librsvg2-bin") as caught:
        render_png(tune(2), "t")
    assert caught.value.code == "missing_tool"


def test_after_a_pickup_every_bar_is_full_and_each_chord_stands_on_its_note() -> None:
    from composer.arrange import arrange

    bar = [*run(60, 4), *run(62, 4), *run(64, 2), *run(65, 2), *run(67, 4)]
    melody = Melody(tuple([*run(REST, 12), *run(67, 4), *bar * 7, *run(60, 16)]), key="C major")
    assert melody.pickup_steps == 4
    symbols = arrange(melody, "folk").symbols()
    root = ET.fromstring(melody_to_musicxml(melody, "t", symbols))
    divisions = int(root.findtext(".//divisions") or 1)
    lengths = [sum(int(n.findtext("duration") or 0) for n in m.iter("note")) * 4 // divisions
               for m in root.iter("measure")]
    assert lengths == [4] + [16] * 8  # the pickup, then whole bars: no hidden padding
    assert len(root.findall(".//harmony")) == len(symbols)
    for measure in root.iter("measure"):  # a chord symbol always comes right before a note or rest
        children = list(measure)
        for i, element in enumerate(children):
            if element.tag == "harmony":
                assert children[i + 1].tag == "note"


def test_librsvg_in_this_process_draws_what_rsvg_convert_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    from composer.arrange import arrange

    melody = tune(12)
    chords = arrange(melody, "folk").symbols()
    assert score._rasteriser() is not None, "librsvg and cairo load here (librsvg2-bin brings them)"
    png = render_png(melody, "Folk — 12 bars", chords=chords)
    monkeypatch.setenv(score.SUBPROCESS_ENV, "1")
    assert score._rasteriser() is None
    expected = render_png(melody, "Folk — 12 bars", chords=chords)
    assert Image.open(io.BytesIO(png)).mode == "L"  # black on white: one byte a pixel
    assert (decode(png) == decode(expected)).all()
    assert len(png) < len(expected)


def test_colour_is_kept_and_a_broken_svg_is_a_render_error() -> None:
    rasteriser = score._rasteriser()
    assert rasteriser is not None
    svg = (b'<svg xmlns="http://www.w3.org/2000/svg" width="30px" height="20px">'
           b'<rect x="10" y="5" width="10" height="10" fill="#ff0000"/></svg>')
    pixels = decode(rasteriser.png(svg))
    assert pixels.shape == (20, 30, 4)
    assert tuple(pixels[10, 15]) == (255, 0, 0, 255) and tuple(pixels[0, 0]) == (255, 255, 255, 255)
    with pytest.raises(RenderError, match="librsvg"):
        rasteriser.png(b"<svg")
