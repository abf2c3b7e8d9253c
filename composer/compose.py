"""One request in, one melody out: style or mix, controls, optional primer, best of N candidates."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field

import numpy as np

from composer.encoding import decode, encode, fit_range
from composer.errors import ComposerError, StyleError
from composer.instruments import instrument_name, program_for
from composer.judge import candidate_scores
from composer.keys import estimate_keys, key_name, normalising_shift
from composer.melody import HOLD, Melody
from composer.midi_writer import melody_to_midi
from composer.model_store import ModelLibrary
from composer.sampler import sample
from composer.style_mix import mix_label, parse_mix

MIN_BARS, MAX_BARS = 1, 64
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.1, 2.0
MIN_TOP_P, MAX_TOP_P = 0.05, 1.0
MIN_TEMPO, MAX_TEMPO = 20.0, 400.0
MIN_PRIMER_BARS, MAX_PRIMER_BARS = 1, 16
MIN_CANDIDATES, MAX_CANDIDATES = 1, 16
MAX_SEED = 2**32 - 1


class RequestError(ComposerError):
    """A control outside its bounds; ``code`` names it (``bad_temperature``, ``bad_bars``, ...)."""

    code = "bad_request"


def _check(name: str, value: object, low: float, high: float, integer: bool = False) -> None:
    code = f"bad_{name.replace('-', '_')}"
    kind = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        kind_name = "a whole number" if integer else "a number"
        raise RequestError(f"{name} must be {kind_name}, not {value!r}", code)
    if not low <= value <= high:  # also false for NaN
        raise RequestError(f"{name} must be between {low:g} and {high:g}, not {value:g}", code)


@dataclass(frozen=True)
class ComposeRequest:
    """What to compose. ``style`` is a name, ``a+b`` or ``a:0.7,b:0.3``; ``instrument`` a General
    MIDI name or program number 0..127; ``None`` means the style's default (or a random seed)."""

    style: str = "classical"
    bars: int = 16
    temperature: float = 1.0
    top_p: float = 0.95
    tempo_bpm: float | None = None
    instrument: str | int | None = None
    seed: int | None = None
    primer: Melody | None = field(default=None, repr=False)
    primer_bars: int = 4
    candidates: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.style, str):
            raise StyleError(f"style must be a name, not {self.style!r}", "bad_mix")
        parse_mix(self.style)
        _check("bars", self.bars, MIN_BARS, MAX_BARS, integer=True)
        _check("temperature", self.temperature, MIN_TEMPERATURE, MAX_TEMPERATURE)
        _check("top-p", self.top_p, MIN_TOP_P, MAX_TOP_P)
        if self.tempo_bpm is not None:
            _check("tempo", self.tempo_bpm, MIN_TEMPO, MAX_TEMPO)
        if self.instrument is not None:
            program_for(self.instrument)
        if self.seed is not None:
            _check("seed", self.seed, 0, MAX_SEED, integer=True)
        if self.primer is not None and not isinstance(self.primer, Melody):
            raise RequestError("the primer must be a Melody", "bad_primer")
        _check("primer-bars", self.primer_bars, MIN_PRIMER_BARS, MAX_PRIMER_BARS, integer=True)
        _check("candidates", self.candidates, MIN_CANDIDATES, MAX_CANDIDATES, integer=True)

    @property
    def mix(self) -> dict[str, float]:
        return parse_mix(self.style)


@dataclass(frozen=True)
class Composition:
    """The chosen melody (primer bars first, if any) and how it came about."""

    melody: Melody
    request: ComposeRequest
    mix: dict[str, float]
    seed: int
    #: How many steps at the start of ``melody`` are the primer's.
    primer_steps: int
    #: The model's mean log-likelihood per step (nats) of the continuation, END included.
    log_likelihood: float

    def description(self) -> str:
        m, r = self.melody, self.request
        bars = round((m.n_steps - self.primer_steps) / m.steps_per_bar)
        primer_bars = self.primer_steps // m.steps_per_bar
        primer = f" after {primer_bars} bars of the primer" if self.primer_steps else ""
        return (f"{mix_label(self.mix)}: {bars} bars{primer} in {m.time_signature[0]}/{m.time_signature[1]}, "
                f"{m.key}, {m.tempo_bpm:g} bpm, {instrument_name(m.program)}; temperature {r.temperature:g}, "
                f"top-p {r.top_p:g}, best of {r.candidates}, seed {self.seed}")

    def midi_bytes(self) -> bytes:
        return melody_to_midi(self.melody)


def _primer_context(primer: Melody, bars: int, max_positions: int, in_c: bool) -> tuple[Melody, int]:
    """The primer's last ``bars`` bars (padded to a whole bar) in the models' range, moved to C major or
    A minor if ``in_c``, and the shift used."""
    if primer.steps_per_bar > max_positions:
        raise RequestError(f"the primer's {primer.time_signature[0]}/{primer.time_signature[1]} bars are "
                           "longer than the models know", "bad_primer")
    padded = primer.replace(events=primer.events + (HOLD,) * (-primer.n_steps % primer.steps_per_bar))
    context = padded.bars(max(0, math.ceil(padded.n_bars) - bars))
    if not context.pitches():
        raise RequestError(f"the primer's last {bars} bars have no notes", "bad_primer")
    moved = context.transposed(normalising_shift(np.array(context.events))) if in_c else context
    fitted = fit_range(moved)
    if fitted is None:
        raise RequestError("the primer spans more than three octaves", "bad_primer")
    return fitted, fitted.pitches()[0] - context.pitches()[0]


def _shift_back(events: np.ndarray, shift: int) -> tuple[int, ...]:
    """Undo the shift into the models' range (and key), folding notes past the MIDI range by octaves."""
    pitches = events + shift
    pitches = np.where(pitches > 127, pitches - 12 * ((pitches - 116) // 12), pitches)
    pitches = np.where(pitches < 0, pitches + 12 * ((11 - pitches) // 12), pitches)
    return tuple(int(e) for e in np.where(events >= 0, pitches, events))


def _corpus_key_shift(key_shifts: tuple[int, ...], seed: int) -> int:
    """A shift (-6..+5) drawn, by the seed, as often as the corpus's pieces needed it to reach C."""
    weights = np.array(key_shifts, dtype=float)
    shift = int(np.random.default_rng([seed, 1]).choice(12, p=weights / weights.sum()))
    return (shift + 6) % 12 - 6


def compose(request: ComposeRequest, library: ModelLibrary) -> Composition:
    """Sample ``request.candidates`` melodies in one batch; keep the best by model score and sanity.

    If a style of the mix was trained with keys normalised, the models play in C major / A minor: a
    primer is moved there and the result back to the primer's key, else to a key drawn from the lead
    style's corpus."""
    mix = request.mix
    mixture = library.mixture(mix)
    lead = library.get(max(mix, key=mix.__getitem__)).info
    seed = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1)
    program = program_for(request.instrument) if request.instrument is not None else lead.program
    key_shifts = {name: library.get(name).info.key_shifts for name in mix}
    in_c = any(key_shifts.values())
    if request.primer is not None:
        max_positions = min(library.get(name).model.config.max_positions for name in mix)
        context, shift = _primer_context(request.primer, request.primer_bars, max_positions, in_c)
        like = Melody((), context.time_signature, request.tempo_bpm or context.tempo_bpm, program)
    else:
        context = None
        by_weight = sorted(mix, key=mix.__getitem__, reverse=True)
        drawn_from = next((key_shifts[name] for name in by_weight if key_shifts[name]), None)
        shift = _corpus_key_shift(drawn_from, seed) if drawn_from else 0
        like = Melody((), lead.time_signature, request.tempo_bpm or lead.tempo_bpm, program)
    spb, steps = like.steps_per_bar, request.bars * like.steps_per_bar
    primer_tokens = encode(context) if context is not None else []
    samples = sample(mixture, steps=steps, steps_per_bar=spb, candidates=request.candidates,
                     rng=np.random.default_rng(seed), temperature=request.temperature, top_p=request.top_p,
                     primer=primer_tokens, cadence_from=steps - spb)
    melodies = [decode(primer_tokens + row.tolist(), like) for row in samples.tokens]
    best = int(np.argmax(candidate_scores(melodies, samples.log_likelihood)))
    (tonic,), (minor,) = estimate_keys(np.array([melodies[best].events]))
    melody = melodies[best].replace(events=_shift_back(np.array(melodies[best].events), -shift),
                                    key=key_name((tonic - shift) % 12, bool(minor)))
    return Composition(melody, request, mix, seed, len(primer_tokens), float(samples.log_likelihood[best]))
