"""One call from a request to everything a front end sends: MIDI, OGG/Opus audio, score PNG, caption data.

Front ends (the Telegram bot) run ``make_piece`` in a worker process; it never touches the network.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from composer.audio import render_ogg
from composer.compose import ComposeRequest, compose
from composer.errors import RenderError
from composer.extract import melody_from_midi
from composer.instruments import instrument_name
from composer.model_store import ModelLibrary
from composer.score import render_png

log = logging.getLogger(__name__)


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


def make_piece(
    request: ComposeRequest,
    library: ModelLibrary,
    *,
    primer_midi: bytes | None = None,
    soundfont: Path | None = None,
    title: str = "",
    audio_timeout: float = 30.0,
) -> Piece:
    """Compose ``request`` (continuing the melody of ``primer_midi`` if given) and render it.

    Raises ``MidiError`` for an unusable primer file and other ``ComposerError`` for bad requests.
    """
    primer_info = None
    if primer_midi is not None:
        primer = melody_from_midi(primer_midi)
        request = replace(request, primer=primer)
    composition = compose(request, library)
    melody = composition.melody
    if primer_midi is not None:
        primer_melody = request.primer
        assert primer_melody is not None
        primer_info = PrimerInfo(
            total_bars=round(primer_melody.n_bars),
            primer_bars=round(composition.primer_steps / primer_melody.steps_per_bar),
            notes=len(primer_melody.notes()),
            time_signature=primer_melody.time_signature,
            tempo_bpm=primer_melody.tempo_bpm,
        )
    midi = composition.midi_bytes()
    problems: list[str] = []
    # Audio mostly waits on its subprocesses (fluidsynth, opusenc), so it overlaps the score. The score
    # stays in the calling thread: verovio fails to load its fonts when first used outside the main thread.
    with ThreadPoolExecutor(1) as pool:
        audio = pool.submit(render_ogg, midi, soundfont=soundfont, timeout=audio_timeout)
        try:
            png = render_png(melody, title or composition.description())
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
    )
