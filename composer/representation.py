"""How a melody becomes model inputs and targets, and back: the one place that knows it.

After Magenta's encoder-decoders: a ``Representation`` is saved in each model's ``config.json`` and used
by the dataset, training, evaluation, compose and the sampler alike. It owns

- the pitch range (``low_pitch..high_pitch``; melodies are folded into it by octaves, never refused) and
  the register: under the ``"keep"`` fold policy a melody that fits the range keeps its octave, so a
  style's model learns where its tunes lie (fiddle tunes high, chorale tenors low); ``"centre"`` (the
  models trained before 2026-11-26) moved every melody by octaves to the middle of the range,
- the key policy: ``"normalise"`` moves every melody to C major or A minor by its estimated key
  (Krumhansl-Kessler) and the mode (major/minor) becomes a control input; ``"written"`` keeps the keys
  as written (the mode input is still the estimated mode),
- the metres the style's corpus holds (a control input; anything else is "other"),
- the token grammar and the inputs of each step.

Targets (what the model predicts, one per grid step): ``PAD START END REST HOLD`` and one id per pitch.
Inputs at step ``t`` (predicting the token of step ``t``):

- the previous token, where a ``HOLD`` carries the pitch it holds (``held`` ids), so the model always
  knows the sounding pitch however long a note lasts;
- the position of step ``t`` in its bar;
- how many whole bars are left after the bar of step ``t`` (``max_bars_left`` meaning "that many or
  more"), so a piece can phrase towards its end and close with a cadence in its last bar;
- the control: metre, mode and register band. Modes are major and minor unless the style's recipe asks
  for more (``keys.MODES``: mixolydian and dorian for fiddle tunes); a style's recipe can also split its
  corpus into register bands by mean pitch (Palestrina's sopranos to basses), each its own control.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from composer.keys import MODE_MINOR, MODES, estimate_keys, estimate_mode, sounding_pitches
from composer.melody import HOLD, REST, Melody, canonical

PAD, START, END, REST_ID, HOLD_ID = 0, 1, 2, 3, 4
FIRST_PITCH_ID = 5
#: ``Representation.pitch_classes`` of an id with no pitch (the pitch classes are 0..11).
NO_PITCH_CLASS = 12
KEY_POLICIES = ("normalise", "written")
FOLD_POLICIES = ("keep", "centre")
#: The tonic pitch class a normalised melody is in: C for major, A for minor.
NORMAL_TONIC = {False: 0, True: 9}


@dataclass(frozen=True)
class Undo:
    """What ``decode`` needs to give a melody back its own key: the semitones it was moved by."""

    shift: int = 0


@dataclass(frozen=True)
class Example:
    """One teacher-forcing sequence: inputs ``(tokens, positions, bars_left, control)`` and targets with
    their loss weights, all of one length."""

    tokens: np.ndarray
    positions: np.ndarray
    bars_left: np.ndarray
    control: int
    targets: np.ndarray
    weights: np.ndarray
    steps_per_bar: int


@dataclass(frozen=True)
class Representation:
    low_pitch: int = 48
    high_pitch: int = 84
    max_positions: int = 32
    max_bars_left: int = 16
    key_policy: str = "normalise"
    #: Metres the corpus holds often enough to be asked for (``control``: index 0 is "another metre").
    metres: tuple[tuple[int, int], ...] = ((4, 4),)
    #: How many corpus pieces are in each metre of ``metres`` (the default is drawn from these).
    metre_counts: tuple[int, ...] = (1,)
    #: Corpus pieces per key, ``[major keys on C..B] + [minor keys on C..B]`` (24 counts).
    key_counts: tuple[int, ...] = field(default=(1,) + (0,) * 23)
    #: ``"keep"``: a melody in range keeps its octave; ``"centre"``: every melody is centred by octaves.
    fold_policy: str = "keep"
    #: The corpus's register: the mean of its melodies' mean pitches (MIDI), keys as written. A melody
    #: sampled in C major / A minor goes to its key the way (up or down) that lands it nearest to it.
    register: float | None = None
    #: How long the corpus's melodies stay still (a held note or a silence): the longest such stretch in
    #: 95% of their 16-bar windows, in bars. Best-of-N lets a melody be still this long (at least
    #: ``judge.MAX_STILL_BARS``): Palestrina's voices rest for bars between phrases, fiddle tunes never.
    still_bars: float | None = None
    #: The corpus's widest range: the span (highest minus lowest pitch, semitones) of 99% of its melodies.
    #: A sampled melody stays within it (or within its primer's span, if wider): a voice keeps to its
    #: range (Palestrina's voices to an 11th), where the model alone let long melodies drift wider.
    span: int | None = None
    #: The modes of the control (``keys.MODES``, major and minor first); a melody in a mode left out
    #: counts as major or minor (``keys.MODE_MINOR``).
    modes: tuple[str, ...] = ("major", "minor")
    #: Corpus pieces in each of ``modes`` (empty in configs made before modes beyond major and minor).
    mode_counts: tuple[int, ...] = ()
    #: Mean pitches (MIDI, as the model sees the melody) that part the register bands of the control;
    #: none: one band.
    register_edges: tuple[float, ...] = ()
    #: Corpus pieces in each register band, and the mean of their mean pitches as written (where a
    #: melody sampled in a band is moved to its key); empty with one band.
    band_counts: tuple[int, ...] = ()
    band_registers: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.key_policy not in KEY_POLICIES:
            raise ValueError(f"key policy must be one of {KEY_POLICIES}, not {self.key_policy!r}")
        if self.fold_policy not in FOLD_POLICIES:
            raise ValueError(f"fold policy must be one of {FOLD_POLICIES}, not {self.fold_policy!r}")
        if len(self.metres) != len(self.metre_counts) or len(self.key_counts) != 24:
            raise ValueError("one count per metre, 24 key counts")
        if self.modes[:2] != ("major", "minor") or not set(self.modes) <= set(MODES) \
                or len(set(self.modes)) < len(self.modes):
            raise ValueError(f"modes are major, minor and any of {', '.join(MODES[2:])}, each once, not "
                             f"{', '.join(self.modes)}")
        if len(self.mode_counts) not in (0, len(self.modes)):
            raise ValueError("one count per mode")
        bands = len(self.register_edges) + 1
        if bands > 1 and (len(self.band_counts) != bands or len(self.band_registers) != bands):
            raise ValueError("one count and one register per register band")

    # --- vocabulary -------------------------------------------------------------------------------

    @property
    def pitches(self) -> int:
        return self.high_pitch - self.low_pitch + 1

    @property
    def vocab_size(self) -> int:
        """Target ids: PAD START END REST HOLD and the pitches."""
        return FIRST_PITCH_ID + self.pitches

    @property
    def input_vocab_size(self) -> int:
        """Input ids: the target ids (HOLD meaning "silence goes on") plus one "pitch p goes on" per pitch."""
        return self.vocab_size + self.pitches

    def pitch_classes(self, inputs: bool) -> np.ndarray:
        """Per id (input ids if ``inputs``, else target ids): the pitch class of the pitch it strikes or
        holds, ``NO_PITCH_CLASS`` (12) for an id with no pitch. Training can share a term per pitch class
        across octaves (``ModelConfig.pitch_class_sharing``)."""
        ids = sounding_ids(self.vocab_size, self.input_vocab_size if inputs else self.vocab_size)
        return np.where(ids >= FIRST_PITCH_ID, (ids - FIRST_PITCH_ID + self.low_pitch) % 12, NO_PITCH_CLASS)

    @property
    def bands(self) -> int:
        return len(self.register_edges) + 1

    @property
    def controls(self) -> int:
        return (len(self.metres) + 1) * len(self.modes) * self.bands

    # --- keys, modes, metres and registers --------------------------------------------------------

    def control(self, time_signature: tuple[int, int], mode: str, band: int = 0) -> int:
        """The control id of a metre, mode and register band: a metre the corpus lacks is "another
        metre", a mode it lacks is major or minor, a band past the last is the last."""
        ts = tuple(time_signature)
        index = self.metres.index(ts) + 1 if ts in self.metres else 0
        band = min(max(band, 0), self.bands - 1)
        return (index * len(self.modes) + self.mode_index(mode)) * self.bands + band

    def mode_index(self, mode: str) -> int:
        return self.modes.index(mode) if mode in self.modes else int(MODE_MINOR[mode])

    def known_mode(self, mode: str) -> str:
        """``mode`` if the representation has it, else major or minor."""
        return self.modes[self.mode_index(mode)]

    def band_of(self, moved: Melody) -> int:
        """The register band of a melody as the model sees it (``normalise``d): by its mean pitch."""
        pitches = moved.pitches()
        return int(np.searchsorted(self.register_edges, np.mean(pitches), "right")) if pitches else 0

    def band_near(self, register: float | None) -> int:
        """The register band whose pieces' mean pitch (as written) is nearest ``register``: how a style
        with bands takes part in a mix led by another (the middle band for no register)."""
        if self.bands == 1:
            return 0
        if register is None:
            return self.bands // 2
        return int(np.argmin([abs(r - register) for r in self.band_registers]))

    def band_register(self, band: int | None) -> float | None:
        """Where a melody sampled in ``band`` is moved to its key towards: the band's register, else (one
        band, or none given) the corpus's."""
        return self.band_registers[band] if band is not None and self.band_registers else self.register

    def mode_weights(self, minor: bool) -> np.ndarray:
        """How often each of ``modes`` is drawn given major or minor: the corpus's counts of the modes
        of that family (the plain major or minor alone in configs without mode counts)."""
        family = np.array([MODE_MINOR[m] == bool(minor) for m in self.modes], float)
        plain = np.eye(len(self.modes))[int(minor)]
        weights = family * (np.array(self.mode_counts, float) if self.mode_counts else plain)
        return weights if weights.sum() > 0 else plain

    def fold(self, melody: Melody) -> Melody:
        """The melody moved by whole octaves into the range: as little as it takes under the ``keep``
        policy (not at all when it fits), to the middle of the range under ``centre``; notes still
        outside the range (a melody wider than it) are folded in by octaves one by one."""
        pitches = melody.pitches()
        if not pitches:
            return melody
        shift = self._octave_shift(min(pitches), max(pitches))
        events = []
        for e in melody.events:
            if e >= 0:
                p = e + shift
                while p < self.low_pitch:
                    p += 12
                while p > self.high_pitch:
                    p -= 12
                e = p
            events.append(e)
        return melody.replace(events=tuple(events))

    def _octave_shift(self, lowest: int, highest: int) -> int:
        centre = 12 * round(((self.low_pitch + self.high_pitch) - (lowest + highest)) / 24)
        if self.fold_policy == "centre":
            return centre
        up = 12 * -(-(self.low_pitch - lowest) // 12) if lowest < self.low_pitch else 0
        down = 12 * -(-(highest - self.high_pitch) // 12) if highest > self.high_pitch else 0
        shift = up - down
        fits = self.low_pitch <= lowest + shift and highest + shift <= self.high_pitch
        return shift if fits else centre

    def normalise(self, melody: Melody) -> tuple[Melody, Undo, str]:
        """The melody as the model sees it (in C major / A minor under the ``normalise`` policy, folded
        into range), how to undo that, and its mode (one of ``modes``)."""
        tonic, found = estimate_mode(np.array(melody.events))
        mode = self.known_mode(found)
        shift = self._key_shift(tonic, MODE_MINOR[found]) if self.key_policy == "normalise" else 0
        moved = self.fold(melody.transposed(shift)) if shift else self.fold(melody)
        first = melody.pitches()
        total = (moved.pitches()[0] - first[0]) if first else shift
        # The octave part of the move is undone too, so a primer's continuation sits where it did.
        return moved, Undo(-total), mode

    @staticmethod
    def _key_shift(tonic: int, minor: bool) -> int:
        """Semitones (-6..5) that move a melody on ``tonic`` to C major / A minor: its register moves
        by half an octave at most."""
        return int((NORMAL_TONIC[bool(minor)] - tonic + 6) % 12 - 6)

    def shift_to_key(self, tonic: int, minor: bool, melody: Melody | None = None,
                     band: int | None = None) -> Undo:
        """How to move ``melody``, sampled in C major / A minor, to ``tonic`` (pitch class) and mode: up
        or down, whichever lands it nearer the corpus's register, or register ``band``'s (without a melody
        or a register, the inverse of ``normalise``'s move, half an octave at most).

        The key move to C major / A minor spreads a style's register: ``normalise`` folds a tune that
        its move pushed out of range back by an octave, so a G major fiddle tune on D4..A5 is learned on
        G3..D5, beside D major tunes learned on C4..G5. Moved back the short way, such a melody would
        sit on D3..A4, below any real fiddle tune."""
        if self.key_policy != "normalise":
            return Undo(0)
        shift = -self._key_shift(tonic, minor)  # the inverse of ``normalise``'s move
        pitches = melody.pitches() if melody is not None else []
        register = self.band_register(band)
        if not shift or not pitches or register is None:
            return Undo(shift)
        other = shift - 12 if shift > 0 else shift + 12
        mean = float(np.mean(pitches))
        return Undo(min((shift, other), key=lambda way: abs(mean + way - register)))

    # --- tokens -----------------------------------------------------------------------------------

    def event_ids(self, events: np.ndarray) -> np.ndarray:
        """Target ids of melody events (pitches must be in range)."""
        events = np.asarray(events, np.int64)
        pitch = events >= 0
        if pitch.any() and (events[pitch].min() < self.low_pitch or events[pitch].max() > self.high_pitch):
            raise ValueError(f"pitch outside {self.low_pitch}..{self.high_pitch}")
        return np.where(pitch, events - self.low_pitch + FIRST_PITCH_ID,
                        np.where(events == HOLD, HOLD_ID, REST_ID)).astype(np.int64)

    def id_events(self, ids: np.ndarray) -> np.ndarray:
        """Melody events of target ids (REST, HOLD and pitch ids only)."""
        ids = np.asarray(ids, np.int64)
        return np.where(ids >= FIRST_PITCH_ID, ids - FIRST_PITCH_ID + self.low_pitch,
                        np.where(ids == HOLD_ID, HOLD, REST))

    def input_ids(self, ids: np.ndarray, sounding: np.ndarray) -> np.ndarray:
        """Input ids of target ids ``ids`` given the pitch id sounding before each (``-1`` for silence):
        a HOLD while a note sounds becomes "that pitch goes on"."""
        held = (ids == HOLD_ID) & (sounding >= FIRST_PITCH_ID)
        return np.where(held, sounding + self.pitches, ids)

    @staticmethod
    def next_sounding(ids: np.ndarray, sounding: np.ndarray) -> np.ndarray:
        """The sounding pitch id after target ids ``ids`` (``-1`` in silence)."""
        return np.where(ids >= FIRST_PITCH_ID, ids, np.where(ids == REST_ID, -1, sounding))

    def sequence_inputs(self, ids: np.ndarray) -> np.ndarray:
        """Input ids for teacher forcing on target ids ``ids`` (START first, the last one dropped): the
        ``input_ids`` of each previous id, given what sounds before it."""
        previous = np.asarray(ids[:-1], np.int64)
        pitch_after = sounding_pitches(self.id_events(previous)[None])[0]
        sounding_after = np.where(pitch_after >= 0, pitch_after - self.low_pitch + FIRST_PITCH_ID, -1)
        sounding_before = np.concatenate([[-1], sounding_after[:-1]])
        return np.concatenate([[START], self.input_ids(previous, sounding_before)]).astype(np.int64)

    def bars_left(self, steps: np.ndarray, steps_per_bar: int, total_bars: int) -> np.ndarray:
        """The bars-left input of absolute steps ``steps`` in a piece of ``total_bars`` bars."""
        left = total_bars - 1 - np.asarray(steps) // steps_per_bar
        return np.clip(left, 0, self.max_bars_left).astype(np.int64)

    def encode(self, melody: Melody) -> tuple[np.ndarray, Undo, int]:
        """Target ids of the melody's events as the model sees them, how to undo the key move, and the
        control id (metre, mode and register band)."""
        moved, undo, mode = self.normalise(melody)
        control = self.control(melody.time_signature, mode, self.band_of(moved))
        return self.event_ids(np.array(moved.events)), undo, control

    def decode(self, ids: np.ndarray | list[int], undo: Undo, like: Melody) -> Melody:
        """The melody of target ids (PAD, START and END dropped) in its own key, with metre, tempo and
        instrument taken from ``like``; notes moved past the MIDI range are folded back by octaves."""
        ids = np.asarray([i for i in np.asarray(ids).tolist() if i not in (PAD, START, END)], np.int64)
        events = self.id_events(ids)
        pitches = events + undo.shift
        pitches = np.where(pitches > 127, pitches - 12 * ((pitches - 116) // 12), pitches)
        pitches = np.where(pitches < 0, pitches + 12 * ((11 - pitches) // 12), pitches)
        events = np.where(events >= 0, pitches, events)
        return like.replace(events=tuple(canonical([int(e) for e in events])))

    def examples(self, melody: Melody, max_steps: int) -> list[Example]:
        """Teacher-forcing sequences of one whole piece, cut at bar lines into at most ``max_steps``
        steps. Bars left count to the end of the whole piece; only the last chunk is scored on END.
        Only the first chunk starts from START: a later one starts from the input of the step before it
        (its sounding pitch included), so START always means "a piece begins here". When every chunk
        began with START, 65% of renaissance's START examples were middles of masses, and generated
        openings had the notes of real middles (5.2 notes in the first two bars, 0.37 of a bar each,
        against 5.1 and 0.35 in real middles and 4.4 and 0.48 in real openings)."""
        if melody.steps_per_bar > self.max_positions:
            return []
        moved, _, mode = self.normalise(melody)
        control = self.control(melody.time_signature, mode, self.band_of(moved))
        spb = melody.steps_per_bar
        total_bars = -(-moved.n_steps // spb)
        bars_per_chunk = max(1, max_steps // spb)
        ids = self.event_ids(np.array(moved.events))
        inputs = self.sequence_inputs(np.concatenate([ids, [END]]))  # START, then each step's input
        out = []
        for first_bar in range(0, total_bars, bars_per_chunk):
            a, b = first_bar * spb, min((first_bar + bars_per_chunk) * spb, len(ids))
            if not moved.bars(first_bar, first_bar + bars_per_chunk).pitches():
                continue  # silence throughout
            final = b == len(ids)
            targets = np.concatenate([ids[a:b], [END]])
            steps = np.arange(a, b + 1)
            weights = np.ones(len(targets), np.float32)
            if not final:
                weights[-1] = 0.0
            out.append(Example(inputs[a:b + 1], steps % spb, self.bars_left(steps, spb, total_bars), control,
                               targets, weights, spb))
        return out

    # --- persistence ------------------------------------------------------------------------------

    def to_config(self) -> dict:
        data = asdict(self)
        data["metres"] = [list(m) for m in self.metres]
        for name in ("modes", "mode_counts", "register_edges", "band_counts", "band_registers"):
            data[name] = list(data[name])
        return data

    @classmethod
    def from_config(cls, data: dict) -> Representation:
        return cls(
            low_pitch=int(data["low_pitch"]), high_pitch=int(data["high_pitch"]),
            max_positions=int(data["max_positions"]), max_bars_left=int(data["max_bars_left"]),
            key_policy=str(data["key_policy"]),
            metres=tuple((int(n), int(d)) for n, d in data["metres"]),
            metre_counts=tuple(int(c) for c in data["metre_counts"]),
            key_counts=tuple(int(c) for c in data["key_counts"]),
            fold_policy=str(data.get("fold_policy", "centre")),  # configs before it centred every melody
            register=float(data["register"]) if data.get("register") is not None else None,
            still_bars=float(data["still_bars"]) if data.get("still_bars") is not None else None,
            span=int(data["span"]) if data.get("span") is not None else None,  # none before it
            # Configs made before modes and register bands have major and minor and one band.
            modes=tuple(str(m) for m in data.get("modes", ("major", "minor"))),
            mode_counts=tuple(int(c) for c in data.get("mode_counts", ())),
            register_edges=tuple(float(e) for e in data.get("register_edges", ())),
            band_counts=tuple(int(c) for c in data.get("band_counts", ())),
            band_registers=tuple(float(r) for r in data.get("band_registers", ())),
        )

    @classmethod
    def for_corpus(cls, melodies: list[Melody], key_policy: str = "normalise", min_share: float = 0.03,
                   max_metres: int = 6, max_bars_left: int = 16, modes: tuple[str, ...] = ("major", "minor"),
                   register_bands: int = 1) -> Representation:
        """The representation of a corpus: its metres (those of at least ``min_share`` of the pieces, at
        most ``max_metres``, each fitting the positions), its keys, modes (of ``modes``) and register,
        and ``register_bands`` bands of as many pieces each by mean pitch."""
        counts: dict[tuple[int, int], int] = {}
        for m in melodies:
            counts[m.time_signature] = counts.get(m.time_signature, 0) + 1
        base = cls()
        common = sorted((c, ts) for ts, c in counts.items()
                        if c >= min_share * len(melodies)
                        and Melody((), ts).steps_per_bar <= base.max_positions)
        common = common[::-1][:max_metres]
        tonics, minors = estimate_keys_of(melodies)
        keys = np.bincount(tonics + 12 * minors, minlength=24)
        rep = cls(key_policy=key_policy, max_bars_left=max_bars_left, metres=tuple(ts for _, ts in common),
                  metre_counts=tuple(c for c, _ in common), key_counts=tuple(int(k) for k in keys),
                  register=corpus_register(melodies), still_bars=corpus_still_bars(melodies),
                  span=corpus_span(melodies), modes=modes)
        if register_bands < 1:
            raise ValueError(f"register bands must be 1 or more, not {register_bands}")
        normalised = [rep.normalise(m) for m in melodies]
        found = [rep.mode_index(mode) for _, _, mode in normalised]
        rep = replace(rep, mode_counts=tuple(int(c) for c in np.bincount(found, minlength=len(modes))))
        means = np.array([np.mean(moved.pitches()) for moved, _, _ in normalised if moved.pitches()])
        quantiles = np.quantile(means, np.arange(1, register_bands) / register_bands).round(2) \
            if len(means) else []
        edges: list[float] = []
        for edge in quantiles:  # only edges with pieces on both sides: fewer registers, fewer bands
            below = (means >= (edges[-1] if edges else -np.inf)) & (means < edge)
            if below.any() and (means >= edge).any():
                edges.append(float(edge))
        if not edges:
            return rep
        bands = np.searchsorted(edges, means, "right")
        written = np.array([np.mean(m.pitches()) for m in melodies if m.pitches()])
        return replace(rep, register_edges=tuple(edges),
                       band_counts=tuple(int((bands == b).sum()) for b in range(len(edges) + 1)),
                       band_registers=tuple(round(float(written[bands == b].mean()), 2)
                                            for b in range(len(edges) + 1)))


def corpus_register(melodies: list[Melody]) -> float | None:
    """The mean of the melodies' mean pitches (MIDI), rounded to a hundredth; None without notes."""
    means = [float(np.mean(p)) for p in (m.pitches() for m in melodies) if p]
    return round(float(np.mean(means)), 2) if means else None


def corpus_still_bars(melodies: list[Melody], window_bars: int = 16, share: float = 0.95) -> float | None:
    """The longest stretch without an onset in ``share`` of the melodies' ``window_bars``-bar windows (at
    least half that long), in bars, rounded up to a tenth (the judge charges only for longer); None
    without such windows."""
    still = [window.longest_still_bars for m in melodies for window in m.chunks(window_bars)
             if window.n_bars >= window_bars / 2]
    return math.ceil(round(float(np.percentile(still, 100 * share)) * 10, 6)) / 10 if still else None


def corpus_span(melodies: list[Melody], share: float = 0.99) -> int | None:
    """The span (highest minus lowest pitch, semitones) that ``share`` of the melodies keep within (the
    least span that at least that share does); None without notes."""
    spans = [max(p) - min(p) for p in (m.pitches() for m in melodies) if p]
    return int(np.percentile(spans, 100 * share, method="inverted_cdf")) if spans else None


def estimate_keys_of(melodies: list[Melody]) -> tuple[np.ndarray, np.ndarray]:
    """``(tonic pitch classes, is_minor as 0/1)`` of each melody."""
    tonics = np.zeros(len(melodies), np.int64)
    minors = np.zeros(len(melodies), np.int64)
    for i, m in enumerate(melodies):
        (t,), (k,) = estimate_keys(np.array([m.events]))
        tonics[i], minors[i] = t, int(k)
    return tonics, minors


def sounding_ids(vocab_size: int, ids: int) -> np.ndarray:
    """For ids ``0 .. ids - 1`` (target ids, or input ids where ``vocab_size`` and up mean "pitch p goes
    on"): the target id of the pitch each strikes or holds; ids without a pitch (below ``FIRST_PITCH_ID``)
    stay as they are."""
    every = np.arange(ids)
    return np.where(every >= vocab_size, every - (ids - vocab_size), every)


def interval_index(vocab_size: int, input_vocab: int) -> np.ndarray:
    """``(input_vocab, vocab_size)``: for an input id that strikes or holds a pitch and a target pitch id, the
    interval between them as a column ``0 .. 2 * pitches - 2`` (``pitches - 1`` is the unison); every other
    pair gets the last column, ``2 * pitches - 1`` (no interval). The model's interval terms
    (``ModelConfig.interval_terms``) are a vector over these columns, the last one zero."""
    pitches = input_vocab - vocab_size
    held = sounding_ids(vocab_size, input_vocab) - FIRST_PITCH_ID
    targets = np.arange(vocab_size) - FIRST_PITCH_ID
    index = targets[None, :] - held[:, None] + pitches - 1
    known = (held[:, None] >= 0) & (targets[None, :] >= 0)
    return np.where(known, index, 2 * pitches - 1).astype(np.int64)
