"""One call from a request to everything a front end sends: MIDI, OGG/Opus audio, score PNG, caption data.

Front ends (the Telegram bot) run ``make_piece`` in a worker process; it never touches the network.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from composer.arrange import arrange, lead_style
from composer.audio import render_ogg
from composer.compose import MAX_TEMPO, ComposeRequest, Composition, compose
from composer.errors import RenderError
from composer.extract import melody_from_midi
from composer.harmony import HarmonyError
from composer.instruments import instrument_name
from composer.melody import Melody
from composer.midi_writer import melody_to_midi
from composer.model_store import ModelLibrary
from composer.score import render_png

log = logging.getLogger(__name__)

#: Longest piece (primer included) rendered to audio: longer requests get fewer bars or a faster tempo.
MAX_PIECE_SECONDS = 180.0
#: Seconds between the interpreter's hand-overs of the GIL while audio and score are made side by side.
#: The score is Python (music21) holding the GIL; the audio thread lets go of it for each stretch of
#: synthesis between two MIDI events and, at the default 5 ms, then waits up to 5 ms to get it back.
SWITCH_INTERVAL = 0.0005


@dataclass(frozen=True)
class PrimerInfo:
    """What was taken from a seed MIDI file."""

    total_bars: int
    primer_bars: int
    notes: int
    time_signature: tuple[int, int]
    tempo_bpm: float


@dataclass(frozen=True)
class Piece:
    """A composed melody, rendered. ``ogg`` or ``png`` is ``None`` when that renderer failed; ``problems``
    then says why (for logs, not for users)."""

    midi: bytes
    ogg: bytes | None
    png: bytes | None
    description: str
    mix: dict[str, float]
    seed: int
    bars: int
    tempo_bpm: float
    seconds: float
    instrument: str
    temperature: float
    primer: PrimerInfo | None
    problems: tuple[str, ...]
    #: Set when the piece was cut to fit ``max_seconds``: the bars asked for (the piece has ``bars``).
    cut_from_bars: int | None = None
    #: Set when the piece was played faster to fit ``max_seconds``: the tempo it had.
    sped_up_from: float | None = None
    #: The arrangement under the melody (``composer.arrange``: "classical", "folk", "default"...), None
    #: without accompaniment.
    accompaniment: str | None = None


def make_piece(
    request: ComposeRequest,
    library: ModelLibrary,
    *,
    primer_midi: bytes | None = None,
    primer: Melody | None = None,
    soundfont: Path | None = None,
    title: str = "",
    audio_timeout: float = 30.0,
    max_seconds: float = MAX_PIECE_SECONDS,
    accompaniment: bool = True,
) -> Piece:
    """Compose ``request`` (continuing ``primer``, or the melody of ``primer_midi``, if given) and render it.

    A piece longer than ``max_seconds`` is composed again with as many bars as fit, or, if not even
    one new bar fits after the primer, played faster; the ``Piece`` says which. With ``accompaniment``
    the whole melody (a primer's bars included) is harmonised and arranged in the lead style: the MIDI
    and audio have the accompaniment tracks, the score chord symbols.
    Raises ``MidiError`` for an unusable primer file and other ``ComposerError`` for bad requests.
    """
    primer_info = None
    if primer_midi is not None:
        primer = melody_from_midi(primer_midi)
    if primer is not None:
        request = replace(request, primer=primer)
    composition = compose(request, library)
    composition, cut_from_bars, sped_up_from = _fit(composition, request, library, max_seconds)
    melody = composition.melody
    if primer is not None:
        primer_melody = request.primer
        assert primer_melody is not None
        primer_info = PrimerInfo(
            total_bars=round(primer_melody.n_bars),
            primer_bars=round(composition.primer_steps / primer_melody.steps_per_bar),
            notes=len(primer_melody.notes()),
            time_signature=primer_melody.time_signature,
            tempo_bpm=primer_melody.tempo_bpm,
        )
    problems: list[str] = []
    arrangement = None
    if accompaniment:
        try:
            arrangement = arrange(melody, lead_style(composition.mix))
        except HarmonyError as exc:
            problems.append(f"accompaniment: {exc}")
    midi = melody_to_midi(melody, arrangement.tracks) if arrangement else composition.midi_bytes()
    chords = arrangement.symbols() if arrangement else []
    # Audio mostly waits on its subprocesses (fluidsynth, opusenc), so it overlaps the score. The score
    # stays in the calling thread: verovio fails to load its fonts when first used outside the main thread.
    with _quick_gil_hand_over(), ThreadPoolExecutor(1) as pool:
        audio = pool.submit(render_ogg, midi, soundfont=soundfont, timeout=audio_timeout)
        try:
            png = render_png(melody, title or composition.description(), chords=chords)
        except RenderError as exc:
            png = None
            problems.append(f"score: {exc}")
        try:
            ogg = audio.result()
        except RenderError as exc:
            ogg = None
            problems.append(f"audio: {exc}")
    for problem in problems:
        log.warning("rendering failed: %s", problem)
    return Piece(
        midi=midi,
        ogg=ogg,
        png=png,
        description=composition.description(),
        mix=dict(composition.mix),
        seed=composition.seed,
        bars=round((melody.n_steps - composition.primer_steps) / melody.steps_per_bar),
        tempo_bpm=melody.tempo_bpm,
        seconds=melody.duration_seconds,
        instrument=instrument_name(melody.program),
        temperature=request.temperature,
        primer=primer_info,
        problems=tuple(problems),
        cut_from_bars=cut_from_bars,
        sped_up_from=sped_up_from,
        accompaniment=arrangement.plan if arrangement else None,
    )


_switch_lock = threading.Lock()
_switch_users = 0
_switch_before = 0.0


@contextlib.contextmanager
def _quick_gil_hand_over() -> Iterator[None]:
    """``sys.setswitchinterval(SWITCH_INTERVAL)`` while inside (any thread), then the interval as it was."""
    global _switch_users, _switch_before
    with _switch_lock:
        if _switch_users == 0:
            _switch_before = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_before, SWITCH_INTERVAL))
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_before)


def _fit(composition: Composition, request: ComposeRequest, library: ModelLibrary,
         max_seconds: float) -> tuple[Composition, int | None, float | None]:
    """``composition`` cut to ``max_seconds``: fewer bars (same seed), else a faster tempo."""
    melody = composition.melody
    if melody.duration_seconds <= max_seconds:
        return composition, None, None
    bar_seconds = melody.steps_per_bar * melody.seconds_per_step
    primer_seconds = composition.primer_steps * melody.seconds_per_step
    bars = math.floor((max_seconds - primer_seconds) / bar_seconds + 1e-9)
    if bars >= 1:
        shorter = compose(replace(request, bars=min(bars, request.bars), seed=composition.seed), library)
        if shorter.melody.duration_seconds <= max_seconds:
            return shorter, request.bars, None
        composition, melody = shorter, shorter.melody
    tempo = min(MAX_TEMPO, math.ceil(melody.tempo_bpm * melody.duration_seconds / max_seconds))
    faster = replace(composition, melody=melody.replace(tempo_bpm=float(tempo)))
    return faster, None, melody.tempo_bpm
