"""One request in, one melody out: style or mix, controls, optional primer, best of N candidates."""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass, field, replace

import numpy as np

from composer.errors import RequestError, StyleError
from composer.instruments import instrument_name, program_for
from composer.judge import allowed_still_bars, candidate_scores
from composer.keys import MODE_MINOR, estimate_mode, key_name, parse_key
from composer.melody import HOLD, Melody
from composer.midi_writer import melody_to_midi
from composer.model_store import ModelLibrary
from composer.representation import NORMAL_TONIC, Undo
from composer.sampler import MAX_TOP_P, MIN_TOP_P, sample
from composer.style_mix import mix_label, parse_mix

MIN_BARS, MAX_BARS = 1, 64
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.1, 2.0
MIN_TEMPO, MAX_TEMPO = 20.0, 400.0
MIN_PRIMER_BARS, MAX_PRIMER_BARS = 1, 16
MIN_CANDIDATES, MAX_CANDIDATES = 1, 16
MAX_SEED = 2**32 - 1


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
    #: The share of the pitches' probability a new note is drawn from (the likeliest pitches); whether a
    #: note starts is never cut (``sampler._draw``). None: the lead style's (``StyleInfo.top_p``).
    top_p: float | None = None
    tempo_bpm: float | None = None
    instrument: str | int | None = None
    seed: int | None = None
    primer: Melody | None = field(default=None, repr=False)
    primer_bars: int = 4
    candidates: int = 8
    #: ``"D minor"``, ``"Bb major"``; None: the primer's key, else one drawn from the style's corpus.
    key: str | None = None
    #: ``"6/8"``: one of the lead style's metres; None: the primer's, else one drawn from the corpus.
    metre: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.style, str):
            raise StyleError(f"style must be a name, not {self.style!r}", "bad_mix")
        parse_mix(self.style)
        _check("bars", self.bars, MIN_BARS, MAX_BARS, integer=True)
        _check("temperature", self.temperature, MIN_TEMPERATURE, MAX_TEMPERATURE)
        if self.top_p is not None:
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
        if self.key is not None:
            parse_key(self.key)
        if self.metre is not None:
            parse_metre(self.metre)

    @property
    def mix(self) -> dict[str, float]:
        return parse_mix(self.style)


@dataclass(frozen=True)
class Composition:
    """The chosen melody (primer bars first, if any) and how it came about (``request`` with its top-p
    resolved to the lead style's when it named none)."""

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


def parse_metre(text: str) -> tuple[int, int]:
    """``"6/8"`` -> (6, 8)."""
    match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{1,2})\s*", text or "")
    if not match or int(match[1]) < 1 or int(match[2]) not in (1, 2, 4, 8, 16):
        raise RequestError(f"not a metre: {text!r} (say e.g. '3/4' or '6/8')", "bad_metre")
    return int(match[1]), int(match[2])


def metre_name(metre: tuple[int, int]) -> str:
    return f"{metre[0]}/{metre[1]}"


def _primer_context(primer: Melody, bars: int, max_positions: int) -> Melody:
    """The primer's last ``bars`` bars, padded to a whole bar."""
    if primer.steps_per_bar > max_positions:
        raise RequestError(f"the primer's {metre_name(primer.time_signature)} bars are longer than the "
                           "models know", "bad_primer")
    padded = primer.replace(events=primer.events + (HOLD,) * (-primer.n_steps % primer.steps_per_bar))
    context = padded.bars(max(0, math.ceil(padded.n_bars) - bars))
    if not context.pitches():
        raise RequestError(f"the primer's last {bars} bars have no notes", "bad_primer")
    return context


def _draw_index(counts: tuple[int, ...], seed: int, stream: int) -> int:
    """An index drawn, by the seed, as often as ``counts`` says."""
    weights = np.array(counts, dtype=float)
    if weights.sum() <= 0:
        return 0
    return int(np.random.default_rng([seed, stream]).choice(len(weights), p=weights / weights.sum()))


def compose(request: ComposeRequest, library: ModelLibrary) -> Composition:
    """Sample ``request.candidates`` melodies in one batch; keep the first of the sanest
    (``judge.candidate_scores``).

    The metre and key come from the request, else from the primer, else are drawn (by the seed) from the
    lead style's corpus: a key, then a mode of that key's major/minor family, and a register band where
    the lead style has them (a style mixed in takes the band nearest the lead's register). A mode the
    lead style lacks is refused (``unknown_mode``). Models of key policy ``normalise`` play in C major /
    A minor and the melody is moved to the key afterwards (towards the register of its band, if any); a
    primer is moved there first and the result back to the primer's key. The melody keeps within the lead
    style's span (``Representation.span``), or its primer's, if wider."""
    mix = request.mix
    lead_name = max(mix, key=mix.__getitem__)
    lead = library.get(lead_name).info
    rep = lead.representation
    models = {name: library.get(name) for name in mix}
    ranges = {(m.info.representation.low_pitch, m.info.representation.high_pitch) for m in models.values()}
    if len(ranges) > 1:
        raise StyleError("these styles cannot be mixed: their models cover different pitch ranges", "bad_mix")
    seed = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1)
    if request.top_p is None:
        request = replace(request, top_p=lead.top_p)
    program = program_for(request.instrument) if request.instrument is not None else lead.program
    if request.metre is not None and request.primer is None:
        metre = parse_metre(request.metre)
        if metre not in lead.metres:
            known = ", ".join(map(metre_name, lead.metres))
            raise RequestError(f"{lead_name} knows the metres {known}, not {metre_name(metre)}",
                               "unknown_metre", style=lead_name, metres=known, metre=metre_name(metre))
    if request.primer is not None:
        max_positions = min(m.model.config.max_positions for m in models.values())
        context = _primer_context(request.primer, request.primer_bars, max_positions)
        moved, undo, mode = rep.normalise(context)
        minor = MODE_MINOR[mode]
        bands = {name: m.info.representation.band_of(moved) for name, m in models.items()}
        primer_ids = rep.event_ids(np.array(moved.events)).tolist()
        metre = context.time_signature
        tonic = (NORMAL_TONIC[minor] + undo.shift) % 12 if rep.key_policy == "normalise" else None
        like = Melody((), metre, request.tempo_bpm or context.tempo_bpm, program)
    else:
        primer_ids = []
        if request.key is not None:
            tonic, mode = parse_key(request.key)
            if mode not in rep.modes:
                known = ", ".join(rep.modes)
                raise RequestError(f"{lead_name} knows the modes {known}, not {mode}", "unknown_mode",
                                   style=lead_name, modes=known, mode=mode)
            minor = MODE_MINOR[mode]
        else:
            drawn = _draw_index(rep.key_counts, seed, 1)
            tonic, minor = drawn % 12, drawn >= 12
            mode = rep.modes[_draw_index(tuple(rep.mode_weights(minor)), seed, 3)]
        band = _draw_index(rep.band_counts, seed, 4) if rep.bands > 1 else 0
        register = rep.band_register(band)
        bands = {name: band if name == lead_name else m.info.representation.band_near(register)
                 for name, m in models.items()}
        if request.metre is None:
            metre = lead.metres[_draw_index(rep.metre_counts, seed, 2)] if lead.metres else (4, 4)
        like = Melody((), metre, request.tempo_bpm or lead.tempo_bpm, program)
    spb, steps = like.steps_per_bar, request.bars * like.steps_per_bar
    controls = [models[name].info.representation.control(metre, mode, bands[name]) for name in mix]
    model_key = (NORMAL_TONIC[minor], minor) if rep.key_policy == "normalise" else None
    samples = sample(library.mixture(mix), rep, steps=steps, steps_per_bar=spb, candidates=request.candidates,
                     rng=np.random.default_rng(seed), controls=controls, temperature=request.temperature,
                     top_p=request.top_p, primer=primer_ids, cadence_from=steps - spb, key=model_key,
                     repetition=lead.repetition, first_onset_by=spb - like.half_beat_steps, span=rep.span)
    in_model_key = [rep.decode(primer_ids + row.tolist(), Undo(0), like) for row in samples.tokens]
    still = allowed_still_bars(rep.still_bars)
    best = int(np.argmax(candidate_scores(in_model_key, still)))  # the first of the sanest
    if request.primer is None:  # to its key the way that suits the sampled melody's register
        undo = rep.shift_to_key(tonic, minor, in_model_key[best], bands[lead_name])
    melody = rep.decode(primer_ids + samples.tokens[best].tolist(), undo, like)
    if rep.key_policy != "normalise":
        # Keys as written: the model chose one; move it to the one asked for, if any.
        found, found_mode = estimate_mode(np.array(melody.events))
        if request.key is not None and request.primer is None:
            melody = rep.decode(primer_ids + samples.tokens[best].tolist(),
                                Undo(int((tonic - found + 6) % 12 - 6)), like)
        else:
            tonic, mode = found, rep.known_mode(found_mode)
    melody = melody.replace(key=key_name(int(tonic), mode))
    return Composition(melody, request, mix, seed, len(primer_ids), float(samples.log_likelihood[best]))
