"""Sheet music of a melody as a PNG: music21 writes MusicXML, verovio engraves it, librsvg rasterises.

music21 turns the step grid into notes and rests, splits them at bar lines with ties, beams them and
decides the accidentals against the key signature; verovio lays the score out in systems that fit a
phone-sized page; librsvg draws the SVG on white with cairo, in this process (through ctypes), and the
pixels are written as an 8-bit greyscale PNG (the score is black on white: the same picture as an RGBA one,
at a quarter of the bytes to compress). Where librsvg or cairo cannot be loaded (or
``$COMPOSER_SCORE_SUBPROCESS`` is set), ``rsvg-convert`` does it in a process per score, as before.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import functools
import importlib.resources
import itertools
import math
import os
import struct
import subprocess
import threading
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import music21
import numpy as np
import verovio

from composer.errors import RenderError
from composer.melody import STEPS_PER_QUARTER, Melody

#: Width of the PNG: a phone shows it full width, a desktop client at its natural size.
PAGE_WIDTH_PX = 1100
#: Verovio's zoom in percent; at 60 a staff is about 45 px high and four bars fill a line.
SCALE = 60
#: Longer melodies are engraved up to here, and the title says so.
MAX_BARS = 64
RSVG_HINT = "apt-get install librsvg2-bin"
#: Set (to anything but "" or "0") to rasterise with an ``rsvg-convert`` process per score, as before.
SUBPROCESS_ENV = "COMPOSER_SCORE_SUBPROCESS"
#: zlib level of the PNG: 6, libpng's default, as rsvg-convert wrote it.
PNG_LEVEL = 6

_SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLAT_NAMES = ("C", "D-", "D", "E-", "E", "F", "G-", "G", "A-", "A", "B-", "B")
_VEROVIO_LOCK = threading.Lock()
_VEROVIO_OPTIONS = {
    "pageWidth": PAGE_WIDTH_PX * 100 // SCALE,
    "pageHeight": 60000,  # the maximum: every system on one page, then cut to the content
    "adjustPageHeight": True,
    "scale": SCALE,
    "breaks": "auto",
    "footer": "none",
    "pageMarginTop": 60,
    "pageMarginBottom": 60,
    "pageMarginLeft": 60,
    "pageMarginRight": 60,
    "spacingSystem": 6,
    "smuflTextFont": "none",  # no text glyph left in the SVG needs the web font
    "svgFormatRaw": True,
    "xmlIdChecksum": True,  # the same melody gives the same bytes
}


def render_png(melody: Melody, title: str, timeout: float = 10.0,
               chords: Sequence[tuple[int, str]] = ()) -> bytes:
    """A PNG, ``PAGE_WIDTH_PX`` wide on white, of the melody in staff notation under ``title``.

    Treble or bass clef by range, key signature (``melody.key``, else estimated), time signature and
    tempo; systems wrap to the page width; ``chords`` as chord symbols above the staff (a lead sheet).
    Raises ``RenderError`` if engraving or rasterising fails.
    """
    svg = _engrave(melody_to_musicxml(melody, title, chords))
    rasteriser = _rasteriser()
    if rasteriser is None:
        return _svg_to_png(svg, timeout)
    return rasteriser.png(svg.encode())


def _engrave(musicxml: str) -> str:
    """The score as one SVG page, from the process's one verovio toolkit, lent under a lock."""
    with _VEROVIO_LOCK:
        toolkit = _toolkit()
        if not toolkit.loadData(musicxml):
            raise RenderError("verovio could not read the score")
        if toolkit.getPageCount() != 1:
            raise RenderError(f"the score took {toolkit.getPageCount()} pages, expected one")
        return toolkit.renderToSVG(1)


@functools.cache
def _toolkit() -> verovio.toolkit:
    """A toolkit with its fonts. Verovio keeps its default resource path per thread, set only in the
    thread that imported it; elsewhere a plain ``verovio.toolkit()`` finds no fonts. So: set it."""
    toolkit = verovio.toolkit(False)
    if not toolkit.setResourcePath(str(importlib.resources.files("verovio") / "data")):
        raise RenderError("verovio's fonts are missing from its package")
    toolkit.setOptions(_VEROVIO_OPTIONS)
    return toolkit


def melody_to_musicxml(melody: Melody, title: str, chords: Sequence[tuple[int, str]] = ()) -> str:
    """MusicXML text of the melody (at most ``MAX_BARS`` bars) with clef, key, metre and tempo, and
    ``chords`` (``(step, music21 figure)``, e.g. ``(16, "B-m")``) as chord symbols."""
    if melody.n_bars > MAX_BARS:
        title = f"{title} (bars 1–{MAX_BARS} of {math.ceil(melody.n_bars)})"
        melody = melody.bars(0, MAX_BARS)
    key = _key_of(melody)
    names = _spelling(key)
    part = music21.stream.Part()
    num, den = melody.time_signature
    part.append(music21.meter.TimeSignature(f"{num}/{den}"))
    part.append(_KeySignature(key.sharps))
    part.insert(0, _tempo_mark(melody.tempo_bpm))
    # A note or rest is cut (notes tied) where a chord changes, so each symbol stands over its own beat.
    cuts = sorted({step for step, _ in chords})
    position = 0
    for pitch, start, end in melody.notes():
        for a, b in _pieces(position, start, cuts):
            part.append(music21.note.Rest(quarterLength=(b - a) / STEPS_PER_QUARTER))
        pieces = _pieces(start, end, cuts)
        for i, (a, b) in enumerate(pieces):
            note = music21.note.Note(_pitch(pitch, names), quarterLength=(b - a) / STEPS_PER_QUARTER)
            if len(pieces) > 1:
                kind = "start" if i == 0 else "stop" if i == len(pieces) - 1 else "continue"
                note.tie = music21.tie.Tie(kind)
            part.append(note)
        position = end
    total = max(1, -(-melody.n_steps // melody.steps_per_bar)) * melody.steps_per_bar
    for a, b in _pieces(position, total, cuts):  # close the last bar with a rest
        part.append(music21.note.Rest(quarterLength=(b - a) / STEPS_PER_QUARTER))
    part.insert(0, music21.clef.bestClef(part, allowTreble8vb=True, recurse=False))
    if melody.pickup_steps:
        _write_anacrusis(part)
    score = music21.stream.Score([part])
    score.metadata = music21.metadata.Metadata(title=title)
    # What music21's GeneralObjectExporter does, less its deep copy of the whole score (the part has no
    # gaps to fill): measures, ties, beams, accidentals made in place, then durations split and exported.
    score.makeNotation(inPlace=True)
    exporter = music21.musicxml.m21ToXml.ScoreExporter(score, makeNotation=True)
    root = exporter.parse()
    # A chord symbol in the score would be deep-copied by makeNotation and each of its pitches spelt
    # against the key: a third of the time. So the <harmony> elements music21 writes for each figure
    # are made once and put into the MusicXML before the note or rest on the chord's step (every chord
    # step starts one: the notes were cut there).
    shift = melody.steps_per_bar - melody.pickup_steps if melody.pickup_steps else 0
    last = min(melody.n_steps, MAX_BARS * melody.steps_per_bar)
    wanted = {step - shift: figure for step, figure in chords if shift <= step < last}
    if wanted:
        _insert_harmonies(root, wanted)
    return exporter.asBytes().decode("utf-8")


def _insert_harmonies(root: ET.Element, chords: dict[int, str]) -> None:
    """A <harmony> for each ``step: figure`` of ``chords`` before the note or rest starting on that step
    (steps counted from the first note or rest of the score)."""
    divisions = 1
    position = 0  # in divisions
    for measure in root.iter("measure"):
        for element in list(measure):
            if element.tag == "attributes" and element.findtext("divisions"):
                divisions = int(element.findtext("divisions") or 1)
            elif element.tag == "note":
                step, remainder = divmod(position * STEPS_PER_QUARTER, divisions)
                if not remainder and step in chords and element.find("chord") is None:
                    harmony = copy.deepcopy(_harmony_xml(chords.pop(step)))
                    measure.insert(list(measure).index(element), harmony)
                position += int(element.findtext("duration") or 0)
            elif element.tag == "backup":
                position -= int(element.findtext("duration") or 0)
            elif element.tag == "forward":
                position += int(element.findtext("duration") or 0)


@functools.lru_cache(maxsize=512)
def _harmony_xml(figure: str) -> ET.Element:
    """The MusicXML <harmony> music21 writes for a chord symbol of ``figure`` (parsed once per figure)."""
    return music21.musicxml.m21ToXml.MeasureExporter().chordSymbolToXml(music21.harmony.ChordSymbol(figure))


def _pieces(start: int, end: int, cuts: Sequence[int]) -> list[tuple[int, int]]:
    """``[start, end)`` cut at the steps in ``cuts`` (sorted); empty when ``end <= start``."""
    bounds = [start, *(c for c in cuts if start < c < end), end]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def _write_anacrusis(part: music21.stream.Part) -> None:
    """Make the first bar a pickup: drop its leading rest, so it is only as long as its notes, and number
    it 0 as engravers do."""
    part.makeMeasures(inPlace=True)
    measures = list(part.getElementsByClass(music21.stream.Measure))
    first = measures[0]
    rest = next(iter(first.notesAndRests), None)
    if rest is None or not rest.isRest:
        return
    length = rest.quarterLength
    first.remove(rest)
    for element in first.notesAndRests:
        element.offset -= length
    first.paddingLeft = length
    for number, measure in enumerate(measures):
        measure.number = number


def _key_of(melody: Melody) -> music21.key.Key:
    """``melody.key`` ("Bb major", "C# minor", "A dorian": ``keys.key_name``'s) if it parses, else estimated;
    spelt with at most six sharps or flats (Db major rather than C# major)."""
    key = None
    if melody.key:
        tonic, _, mode = melody.key.strip().partition(" ")
        try:
            key = music21.key.Key(tonic[:1] + tonic[1:].replace("b", "-"), mode.strip().lower() or "major")
        except (music21.Music21Exception, ValueError):
            key = None
    key = key or estimate_key(melody)
    if abs(key.sharps) > 6:
        key = music21.key.Key(key.tonic.getEnharmonic().name, key.mode)
    return key


def estimate_key(melody: Melody) -> music21.key.Key:
    """The most likely key by the Krumhansl-Schmuckler profiles over duration-weighted pitch classes."""
    notes = melody.notes()
    if not notes:
        return music21.key.Key("C")
    stream = music21.stream.Stream()
    for pitch, start, end in notes:
        stream.append(music21.note.Note(pitch, quarterLength=(end - start) / STEPS_PER_QUARTER))
    return music21.analysis.discrete.KrumhanslSchmuckler().getSolution(stream)


def _spelling(key: music21.key.Key) -> list[str]:
    """A note name for each pitch class: the key's own, then sharps in sharp keys, flats in flat ones."""
    return list(_key_spelling(key.tonic.name, key.mode))


@functools.lru_cache(maxsize=64)
def _key_spelling(tonic: str, mode: str) -> tuple[str, ...]:
    """``_spelling`` of a key, worked out once per key (music21 realises a scale in about 10 ms)."""
    key = music21.key.Key(tonic, mode)
    names = list(_SHARP_NAMES if key.sharps >= 0 else _FLAT_NAMES)
    scale = list(key.pitches)
    if key.mode == "minor":  # the raised sixth and seventh of melodic minor belong to the key too
        scale += [key.pitchFromDegree(6).transpose("A1"), key.pitchFromDegree(7).transpose("A1")]
    for p in scale:
        names[p.pitchClass] = p.name
    return tuple(names)


class _KeySignature(music21.key.KeySignature):
    """A key signature whose scale is realised once per number of sharps and mode: music21's
    ``makeAccidentals`` asks for the pitch names of the first measure's key signature (about 10 ms a
    score) though only a later change of key would use them."""

    def getScale(self, mode: str | None = "major") -> _Scale:
        return _scale_of(self.sharps, mode)


@dataclass(frozen=True)
class _Scale:
    """What ``makeAccidentals`` reads of a scale: its pitches."""

    pitches: tuple[music21.pitch.Pitch, ...]


@functools.lru_cache(maxsize=64)
def _scale_of(sharps: int, mode: str | None) -> _Scale:
    return _Scale(tuple(music21.key.KeySignature(sharps).getScale(mode).pitches))


def _pitch(midi: int, names: list[str]) -> music21.pitch.Pitch:
    p = music21.pitch.Pitch(names[midi % 12])
    p.octave = 4
    p.octave += (midi - p.midi) // 12  # B#, C- and friends sit across the octave line
    return p


def _tempo_mark(bpm: float) -> music21.expressions.TextExpression:
    """The tempo as bold text "♩ = 120" above the staff.

    A system font has the quarter note; verovio's own metronome glyph needs its web font, which
    librsvg does not load.
    """
    mark = music21.expressions.TextExpression(f"♩ = {round(bpm)}")
    mark.placement = "above"
    mark.style.fontWeight = "bold"
    return mark


class _Rasteriser:
    """librsvg and cairo through ctypes: what ``rsvg-convert --background-color white`` draws, the same
    pixels, without a process (its start, and its libpng writing RGBA, were four fifths of its 0.1 s).

    A score of ``MAX_BARS`` bars draws in tens of milliseconds, so unlike the process this has no time
    limit. ``lock`` keeps one drawing at a time (text layout through pango is not to be shared)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        rsvg = ctypes.CDLL(ctypes.util.find_library("rsvg-2") or "librsvg-2.so.2")
        cairo = ctypes.CDLL(ctypes.util.find_library("cairo") or "libcairo.so.2")
        gobject = ctypes.CDLL(ctypes.util.find_library("gobject-2.0") or "libgobject-2.0.so.0")
        glib = ctypes.CDLL(ctypes.util.find_library("glib-2.0") or "libglib-2.0.so.0")
        p, d, i = ctypes.c_void_p, ctypes.c_double, ctypes.c_int
        self._new = _function(rsvg, "rsvg_handle_new_from_data", p, [ctypes.c_char_p, ctypes.c_size_t, p])
        self._size = _function(rsvg, "rsvg_handle_get_intrinsic_size_in_pixels", i, [p, p, p])  # 2.52
        self._render = _function(rsvg, "rsvg_handle_render_document", i, [p, p, p, p])  # 2.46
        self._unref = _function(gobject, "g_object_unref", None, [p])
        self._free_error = _function(glib, "g_error_free", None, [p])
        self._surface = _function(cairo, "cairo_image_surface_create", p, [i, i, i])
        self._status = _function(cairo, "cairo_surface_status", i, [p])
        self._flush = _function(cairo, "cairo_surface_flush", None, [p])
        self._data = _function(cairo, "cairo_image_surface_get_data", p, [p])
        self._stride = _function(cairo, "cairo_image_surface_get_stride", i, [p])
        self._destroy_surface = _function(cairo, "cairo_surface_destroy", None, [p])
        self._create = _function(cairo, "cairo_create", p, [p])
        self._destroy = _function(cairo, "cairo_destroy", None, [p])
        self._rgb = _function(cairo, "cairo_set_source_rgb", None, [p, d, d, d])
        self._paint = _function(cairo, "cairo_paint", None, [p])

    def png(self, svg: bytes) -> bytes:
        """The SVG drawn on white at its own size in pixels, as a PNG; ``RenderError`` if it cannot be."""
        with self.lock:
            error = ctypes.c_void_p()
            handle = self._new(svg, len(svg), ctypes.byref(error))
            if not handle:
                raise RenderError(f"librsvg could not read the score: {self._take(error)}")
            try:
                width, height = ctypes.c_double(), ctypes.c_double()
                if not self._size(handle, ctypes.byref(width), ctypes.byref(height)):
                    raise RenderError("the score's SVG has no size in pixels")
                pixels = self._draw(handle, math.ceil(width.value), math.ceil(height.value))
            finally:
                self._unref(handle)
        return _png(pixels)

    def _draw(self, handle: int, width: int, height: int) -> np.ndarray:
        """``height`` x ``width`` x 3 (blue, green, red) of the SVG drawn over white."""
        surface = self._surface(1, width, height)  # CAIRO_FORMAT_RGB24: 32 bits a pixel, no alpha
        try:
            if self._status(surface) != 0:
                raise RenderError(f"cairo could not make a {width} x {height} image")
            cr = self._create(surface)
            try:
                self._rgb(cr, 1.0, 1.0, 1.0)
                self._paint(cr)
                viewport = (ctypes.c_double * 4)(0.0, 0.0, float(width), float(height))
                error = ctypes.c_void_p()
                if not self._render(handle, cr, viewport, ctypes.byref(error)):
                    raise RenderError(f"librsvg could not draw the score: {self._take(error)}")
            finally:
                self._destroy(cr)
            self._flush(surface)
            stride = self._stride(surface)
            memory = (ctypes.c_uint8 * (stride * height)).from_address(self._data(surface))
            return np.frombuffer(memory, np.uint8).reshape(height, stride // 4, 4)[:, :width, :3].copy()
        finally:
            self._destroy_surface(surface)

    def _take(self, error: ctypes.c_void_p) -> str:
        """The message of a GError (``domain, code, message``), which is then freed."""
        if not error.value:
            return "no reason given"
        message = ctypes.cast(error.value + 8, ctypes.POINTER(ctypes.c_char_p)).contents.value
        self._free_error(error)
        return (message or b"").decode(errors="replace")


def _function(library: ctypes.CDLL, name: str, restype: object, argtypes: list[object]) -> ctypes._CFuncPtr:
    function = getattr(library, name)
    function.restype = restype
    function.argtypes = argtypes
    return function


@functools.cache
def _loaded_rasteriser() -> _Rasteriser | None:
    try:
        return _Rasteriser()
    except (OSError, AttributeError):  # a library missing, or one older than librsvg 2.52
        return None


def _rasteriser() -> _Rasteriser | None:
    """This process's librsvg and cairo; None to run ``rsvg-convert`` instead: either library missing,
    or ``$COMPOSER_SCORE_SUBPROCESS`` set."""
    if os.environ.get(SUBPROCESS_ENV, "") not in ("", "0"):
        return None
    return _loaded_rasteriser()


def _png(pixels: np.ndarray) -> bytes:
    """A PNG of ``pixels`` (rows x columns x blue, green, red): 8-bit grey where the three agree (black
    ink on white always does), else 8-bit RGB. Rows unfiltered: a score's long white runs compress
    smaller so than with the "Up" or "Sub" filter, at zlib's level 6 in about 9 ms."""
    height, width = pixels.shape[:2]
    grey = pixels[..., 0]
    if (pixels[..., 1] == grey).all() and (pixels[..., 2] == grey).all():
        rows, colour = grey, 0
    else:
        rows, colour = pixels[..., ::-1].reshape(height, width * 3), 2
    lines = np.zeros((height, rows.shape[1] + 1), np.uint8)  # each row starts with its filter, 0: none
    lines[:, 1:] = rows

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(lines.tobytes(), PNG_LEVEL)) + chunk(b"IEND", b""))


def _svg_to_png(svg: str, timeout: float) -> bytes:
    command = ["rsvg-convert", "--format", "png", "--background-color", "white"]
    try:
        done = subprocess.run(command, input=svg.encode(), capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError as e:
        raise RenderError(f"rsvg-convert is not installed: {RSVG_HINT}", code="missing_tool") from e
    except subprocess.TimeoutExpired as e:
        raise RenderError(f"rsvg-convert took longer than {timeout:.1f} s", code="timeout") from e
    if done.returncode != 0 or not done.stdout.startswith(b"\x89PNG"):
        detail = done.stderr.decode(errors="replace").strip()[-300:]
        raise RenderError(f"rsvg-convert failed with exit status {done.returncode}: {detail}")
    return done.stdout
