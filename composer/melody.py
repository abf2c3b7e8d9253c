"""The monophonic melody every part of the composer speaks: one event per grid step."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

#: Event meaning "the current note or rest goes on" (Magenta's NO_EVENT).
HOLD = -2
#: Event meaning "the sounding note stops here" (Magenta's NOTE_OFF).
REST = -1
STEPS_PER_QUARTER = 4


@dataclass(frozen=True)
class Melody:
    """A monophonic melody on a grid of ``STEPS_PER_QUARTER`` steps per quarter note.

    ``events[i]`` is a MIDI pitch (0..127) for a note starting at step ``i``, ``HOLD`` while the
    previous note or rest goes on, or ``REST`` where a note stops. Step 0 is a bar line.
    """

    events: tuple[int, ...]
    time_signature: tuple[int, int] = (4, 4)
    tempo_bpm: float = 120.0
    program: int = 0
    key: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        num, den = self.time_signature
        if num <= 0 or den <= 0 or (16 * num) % den:
            raise ValueError(f"unsupported time signature {num}/{den}")
        if not 1.0 <= self.tempo_bpm <= 1000.0:
            raise ValueError(f"tempo {self.tempo_bpm} out of range")
        bad = [e for e in self.events if not (e in (HOLD, REST) or 0 <= e <= 127)]
        if bad:
            raise ValueError(f"invalid events {bad[:3]}")

    @property
    def steps_per_bar(self) -> int:
        num, den = self.time_signature
        return STEPS_PER_QUARTER * 4 * num // den

    @property
    def n_steps(self) -> int:
        return len(self.events)

    @property
    def n_bars(self) -> float:
        return self.n_steps / self.steps_per_bar

    @property
    def beat_steps(self) -> int:
        """Steps in one beat: a dotted quarter in compound metres (6/8, 9/8, 12/8), else the denominator."""
        num, den = self.time_signature
        if den == 8 and num % 3 == 0 and num > 3:
            return 6
        return max(1, STEPS_PER_QUARTER * 4 // den)

    @property
    def half_beat_steps(self) -> int:
        """Steps in half a beat: an eighth in compound metres (a dotted beat divides in three), else half
        of ``beat_steps`` (at least one step)."""
        beat = self.beat_steps
        return 2 if beat == 6 else max(1, beat // 2)

    @property
    def strong_positions(self) -> tuple[int, ...]:
        """Positions in the bar (steps from the bar line) of the metre's strong beats: the bar line, and
        the middle of the bar when the bar has an even number of beats (as ``beat_steps`` counts them): 4/4
        beats 1 and 3, 2/4 beats 1 and 2, 2/2 both halves, 4/2 beats 1 and 3, 6/8 beats 1 and 4 (in
        eighths), 12/8 the first and third dotted quarter; 3/4, 3/8, 9/8, 5/4 only the bar line."""
        spb, beat = self.steps_per_bar, self.beat_steps
        beats = spb // beat if spb % beat == 0 else 1
        return (0, spb // 2) if beats % 2 == 0 and beats >= 2 else (0,)

    @property
    def first_onset(self) -> int | None:
        """Step of the first note, None if there is none."""
        return next((i for i, e in enumerate(self.events) if e >= 0), None)

    @property
    def pickup_steps(self) -> int:
        """Length of the anacrusis: when the first note comes in the second half of the first bar, the
        steps from it to the first bar line (the silence before it is not played, and the MIDI file and
        score write a short first bar); else 0."""
        first = self.first_onset
        spb = self.steps_per_bar
        if first is None or not spb // 2 <= first < spb or first == 0:
            return 0
        return spb - first

    @property
    def leading_rest_steps(self) -> int:
        """Silence a listener hears before the first note: none before an anacrusis."""
        first = self.first_onset
        if first is None:
            return self.n_steps
        return 0 if self.pickup_steps else first

    def chunks(self, bars: int) -> list[Melody]:
        """The melody cut at bar lines into pieces of ``bars`` bars (the last may be shorter), those with
        notes."""
        n_bars = -(-self.n_steps // self.steps_per_bar)
        pieces = (self.bars(start, start + bars) for start in range(0, n_bars, bars))
        return [piece for piece in pieces if piece.pitches()]

    @property
    def longest_still_bars(self) -> float:
        """The longest stretch without an onset (a held note or a silence, the start and end included),
        in bars."""
        onsets = [0] + [start for _, start, _ in self.notes()] + [self.n_steps]
        return max(b - a for a, b in pairwise(onsets)) / self.steps_per_bar

    @property
    def seconds_per_step(self) -> float:
        return 60.0 / self.tempo_bpm / STEPS_PER_QUARTER

    @property
    def duration_seconds(self) -> float:
        return self.n_steps * self.seconds_per_step

    def notes(self) -> list[tuple[int, int, int]]:
        """The notes as ``(pitch, start_step, end_step)``, end exclusive."""
        out: list[tuple[int, int, int]] = []
        current: tuple[int, int] | None = None
        for i, e in enumerate(self.events):
            if e == HOLD:
                continue
            if current is not None:
                out.append((current[0], current[1], i))
                current = None
            if e >= 0:
                current = (e, i)
        if current is not None:
            out.append((current[0], current[1], len(self.events)))
        return out

    def pitches(self) -> list[int]:
        return [e for e in self.events if e >= 0]

    def replace(self, **changes: object) -> Melody:
        from dataclasses import replace

        return replace(self, **changes)

    def transposed(self, semitones: int) -> Melody:
        return self.replace(events=tuple(e + semitones if e >= 0 else e for e in self.events))

    def bars(self, start: int, stop: int | None = None) -> Melody:
        """The bars ``start`` up to ``stop`` (exclusive) as a melody of their own."""
        spb = self.steps_per_bar
        events = list(self.events[start * spb : None if stop is None else stop * spb])
        if events and events[0] == HOLD:
            # A note tied over from before the cut: re-articulate it so the slice stands alone.
            prior = next((e for e in reversed(self.events[: start * spb]) if e != HOLD), REST)
            events[0] = prior
        return self.replace(events=tuple(canonical(events)))


def canonical(events: list[int] | tuple[int, ...]) -> list[int]:
    """The one spelling of an event list: a silence starts with REST and then HOLDs.

    A leading HOLD becomes REST; a REST that follows silence becomes HOLD.
    """
    out: list[int] = []
    sounding = False
    for e in events:
        if e == REST or (e == HOLD and not out):
            out.append(REST if sounding or not out else HOLD)
            sounding = False
        elif e == HOLD:
            out.append(HOLD)
        else:
            out.append(e)
            sounding = True
    return out
