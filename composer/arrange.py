"""Accompaniment tracks for a melody, arranged in its style from the harmoniser's chords.

| arrangement | chords | texture (General MIDI programs) |
| --- | --- | --- |
| classical | each beat, all 48 | chorale: alto, tenor, bass on viola 41, cello 42, contrabass 43 |
| renaissance | half bar, modal | consort: alto recorder 74, tenor and bass viols (viola 41, cello 42) |
| folk | half bar, dance | oom-pah: bass (acoustic bass 32) on strong beats, accordion 21 chords between |
| celtic | half bar, dance | nylon guitar 24 strumming eighths (jig or reel), its bass note on the beats |
| chinese | none | no functional harmony: tonic-fifth drone (strings 48), pentatonic koto 107 arpeggios |
| others | half bar, dance | piano 0: bass note and block chord on each chord |

The chorale and consort voices are led note to note: each voice takes the chord tone nearest its last
note, below the melody (never crossing it), with the chord's root and third present, and parallel
fifths and octaves against the melody and the bass avoided where another choice exists. The melody
plays at full velocity; the accompaniment softer (``ACCOMPANIMENT_VELOCITY``), so it stays on top.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from composer.harmony import Chord, Harmonisation, HarmonyModel, harmonise, melody_key
from composer.melody import Melody

#: Velocities: the melody is written at 96 (``midi_writer.VELOCITY``); these keep it on top.
ACCOMPANIMENT_VELOCITY = 58
BASS_VELOCITY = 66
#: Channel volume (CC 7) of the accompaniment tracks; the melody keeps the default 100.
ACCOMPANIMENT_VOLUME = 88


@dataclass(frozen=True)
class Track:
    """One accompaniment part: notes as ``(pitch, start_step, end_step, velocity)``."""

    name: str
    program: int
    notes: tuple[tuple[int, int, int, int], ...]
    volume: int = ACCOMPANIMENT_VOLUME


@dataclass(frozen=True)
class Plan:
    texture: str  # chorale, oompah, strum, drone, block
    rhythm: str  # beat, half (half bar in even metres, else bar)
    vocabulary: str
    programs: tuple[int, ...]
    names: tuple[str, ...]


PLANS = {
    "classical": Plan("chorale", "beat", "all", (41, 42, 43), ("Alto", "Tenor", "Bass")),
    "renaissance": Plan("chorale", "half", "modal", (74, 41, 42),
                        ("Alto recorder", "Tenor viol", "Bass viol")),
    "folk": Plan("oompah", "half", "dance", (32, 21), ("Bass", "Accordion")),
    # Nylon rather than steel strings: FluidR3's steel guitar (25) took 0.4 s more CPU to render 16 bars.
    "celtic": Plan("strum", "half", "dance", (24, 24), ("Guitar bass", "Guitar")),
    "chinese": Plan("drone", "none", "all", (48, 107), ("Drone", "Guzheng (koto)")),
}
DEFAULT_PLAN = Plan("block", "half", "dance", (0, 0), ("Piano left hand", "Piano chords"))


@dataclass(frozen=True)
class Arrangement:
    """What goes under a melody: the plan's name, its tracks and the chords (None without harmony)."""

    plan: str
    tracks: tuple[Track, ...]
    harmony: Harmonisation | None

    def symbols(self) -> list[tuple[int, str]]:
        return self.harmony.symbols() if self.harmony else []

    def bass_line(self) -> dict[int, int]:
        """The lowest accompaniment pitch starting at each step."""
        low: dict[int, int] = {}
        for track in self.tracks:
            for pitch, start, _, _ in track.notes:
                low[start] = min(pitch, low.get(start, 999))
        return low


def lead_style(mix: dict[str, float]) -> str:
    """The style with the largest weight (the first named on a tie)."""
    return max(mix, key=lambda s: mix[s]) if mix else ""


def plan_for(style: str) -> tuple[str, Plan]:
    return (style, PLANS[style]) if style in PLANS else ("default", DEFAULT_PLAN)


def rhythm_steps(melody: Melody, rhythm: str) -> int:
    beat, bar = melody.beat_steps, melody.steps_per_bar
    if rhythm == "beat":
        return beat
    beats = max(1, bar // beat)
    return bar // 2 if beats % 2 == 0 and bar % 2 == 0 else bar


def arrange(melody: Melody, style: str, model: HarmonyModel | None = None) -> Arrangement:
    """The accompaniment of ``melody`` in ``style`` (a style name; a mix should pass its lead style)."""
    name, plan = plan_for(style)
    if not melody.notes():
        return Arrangement(name, (), None)
    if plan.texture == "drone":
        return Arrangement(name, _drone(melody, plan), None)
    harmony = harmonise(melody, model, rhythm_steps=rhythm_steps(melody, plan.rhythm),
                        vocabulary=plan.vocabulary)
    texture = {"chorale": _chorale, "oompah": _oompah, "strum": _strum, "block": _block}[plan.texture]
    return Arrangement(name, texture(melody, harmony, plan), harmony)


# ------------------------------------------------------------------------------------------ textures

def _melody_at(melody: Melody) -> np.ndarray:
    """The melody pitch sounding at each step, or the last one heard during rests (-1 before the first)."""
    out = np.full(melody.n_steps, -1)
    last = -1
    for i, e in enumerate(melody.events):
        if e >= 0:
            last = e
        out[i] = last
    return out


def _onsets(chord: Chord, step: int) -> list[int]:
    return list(range(chord.start, chord.end, step))


def _slots(harmony: Harmonisation) -> list[tuple[int, int, Chord]]:
    """The chord spans cut at every ``rhythm_steps`` slot (voices re-articulate each slot)."""
    out = []
    for chord in harmony.chords:
        rhythm = harmony.rhythm_steps
        starts = [chord.start] + [s for s in range(chord.start + 1, chord.end) if s % rhythm == 0]
        for a, b in itertools.pairwise([*starts, chord.end]):
            out.append((a, b, chord))
    return out


def _parallel(a0: int, a1: int, b0: int, b1: int) -> bool:
    """Voices a and b move in the same direction from a perfect fifth or octave (unison) to the same."""
    if a0 == a1 or b0 == b1 or (a1 - a0) * (b1 - b0) <= 0:
        return False
    i0, i1 = (a0 - b0) % 12, (a1 - b1) % 12
    return i0 == i1 and i0 in (0, 7)


def _chorale(melody: Melody, harmony: Harmonisation, plan: Plan) -> tuple[Track, ...]:
    """Alto, tenor and bass led from chord to chord under the melody."""
    sounding = _melody_at(melody)
    voices: list[list[tuple[int, int, int, int]]] = [[], [], []]
    prev: tuple[int, int, int] | None = None  # alto, tenor, bass
    prev_top = None
    slots = _slots(harmony)
    for index, (start, end, chord) in enumerate(slots):
        window = sounding[start:end]
        heard = window[window >= 0]
        top = int(heard.min()) if heard.size else 72
        onset_top = int(sounding[start]) if sounding[start] >= 0 else top
        final = index == len(slots) - 1 or chord is harmony.chords[-1]
        choice = _voice_chord(chord, top, onset_top, prev, prev_top, final)
        for v, pitch in enumerate(choice):
            if pitch is None:
                continue
            if voices[v] and voices[v][-1][0] == pitch and voices[v][-1][2] == start and \
                    _same_chord(slots, index):
                p, s, _, vel = voices[v][-1]  # a held chord tone is tied over, not struck again
                voices[v][-1] = (p, s, end, vel)
            else:
                voices[v].append((pitch, start, end, BASS_VELOCITY if v == 2 else ACCOMPANIMENT_VELOCITY))
        prev = tuple(p if p is not None else (prev[v] if prev else p) for v, p in enumerate(choice))
        prev_top = onset_top
    return tuple(Track(name, program, tuple(notes))
                 for name, program, notes in zip(plan.names, plan.programs, voices, strict=True))


def _same_chord(slots: list, index: int) -> bool:
    return index > 0 and slots[index - 1][2] is slots[index][2]


def _voice_chord(chord: Chord, top: int, onset_top: int, prev: tuple | None, prev_top: int | None,
                 final: bool) -> tuple[int | None, int | None, int | None]:
    """The (alto, tenor, bass) pitches of ``chord`` under a melody whose lowest pitch here is ``top``."""
    pcs = chord.pitch_classes
    root, third = pcs[0], pcs[1]
    fifth = pcs[2]
    seventh = pcs[3] if len(pcs) > 3 else None

    def tones(low: int, high: int) -> list[int]:
        return [p for p in range(low, high + 1) if p % 12 in pcs]

    bass_options = []
    for p in range(max(33, top - 30), min(57, top - 5) + 1):
        if p % 12 == root:
            bass_options.append((p, 0.0))
        elif p % 12 == third and not final and chord.quality != "7":
            bass_options.append((p, 3.0))
        elif p % 12 == third and chord.quality == "dim":
            bass_options.append((p, -1.0))  # diminished triads stand in first inversion
    best, best_cost = (None, None, None), float("inf")
    for bass, bass_cost in bass_options:
        for alto in tones(max(bass + 3, top - 12, 48), top - 1):
            for tenor in tones(max(bass + 1, alto - 12, 40), alto):
                cost = bass_cost
                voiced = {onset_top % 12, alto % 12, tenor % 12, bass % 12}
                cost += 8.0 * (third not in voiced) + 2.0 * (fifth not in voiced)
                cost += 3.0 * (seventh is not None and seventh not in voiced)
                cost += 2.0 * ([onset_top % 12, alto % 12, tenor % 12, bass % 12].count(third) > 1)
                cost += 3.0 * (tenor - bass > 19) + 2.0 * (tenor == alto)
                if prev is not None:
                    pa, pt, pb = prev
                    for p, q in ((pa, alto), (pt, tenor), (pb, bass)):
                        if p is not None:
                            cost += abs(q - p) * (0.5 if p is pb else 1.0)
                    if prev_top is not None and pb is not None:
                        pairs = [(prev_top, onset_top, pb, bass), (prev_top, onset_top, pa, alto),
                                 (prev_top, onset_top, pt, tenor), (pa, alto, pb, bass),
                                 (pt, tenor, pb, bass), (pa, alto, pt, tenor)]
                        cost += sum(10.0 if i == 0 else 5.0 for i, pr in enumerate(pairs)
                                    if None not in pr and _parallel(*pr))
                else:
                    cost += 0.2 * abs(bass - 48) + 0.1 * (top - alto)
                if cost < best_cost:
                    best, best_cost = (alto, tenor, bass), cost
    if best[2] is None:  # the melody is too low for three voices under it: the bass alone
        bass = next((p for p in range(top - 1, 20, -1) if p % 12 == root), None)
        return None, None, bass
    return best


def _bass_pitch(pc: int, near: int, low: int = 36, high: int = 55) -> int:
    options = [p for p in range(low, high + 1) if p % 12 == pc]
    return min(options, key=lambda p: abs(p - near))


def _close_chord(chord: Chord, top: int, low: int = 52) -> list[int]:
    """A close-position chord below ``top`` (at most an octave above ``low``)."""
    high = max(low + 11, min(top - 2, low + 16))
    notes = []
    pcs = chord.pitch_classes
    for pc in pcs[:3] if chord.quality != "7" else pcs[1:]:  # a seventh chord drops its root
        candidates = [p for p in range(high - 11, high + 1) if p % 12 == pc]
        notes.append(candidates[-1])
    return sorted(notes)


def _beat_onsets(melody: Melody, harmony: Harmonisation) -> list[tuple[int, int, Chord]]:
    """(step, beat index in bar, chord) for every beat from the first chord on."""
    beat, bar = melody.beat_steps, melody.steps_per_bar
    out = []
    first = harmony.chords[0].start
    for step in range(first - first % beat, harmony.chords[-1].end, beat):
        at = max(step, first)
        chord = harmony.at(at)
        if chord is not None:
            out.append((at, (step % bar) // beat, chord))
    return out


def _oompah(melody: Melody, harmony: Harmonisation, plan: Plan) -> tuple[Track, ...]:
    """Bass on the strong beats (root, then the fifth while the chord stays), chords between."""
    beat, bar = melody.beat_steps, melody.steps_per_bar
    beats = max(1, bar // beat)
    sounding = _melody_at(melody)
    bass, chords = [], []
    last_bass, last_chord, alternate, last_top = 43, None, False, None
    end_of = harmony.chords[-1].end
    for step, index, chord in _beat_onsets(melody, harmony):
        is_bass = index == 0 or (beats % 2 == 0 and index % 2 == 0)
        if is_bass:
            alternate = chord is last_chord and not alternate
            top = int(sounding[step]) if sounding[step] >= 0 else None
            if alternate:
                last_bass = _bass_pitch(chord.pitch_classes[2], last_bass, 38, 52)
            else:
                last_bass = _pick_bass(chord, last_bass, last_top, top, 38, 52, chord is harmony.chords[-1])
            bass.append((last_bass, step, min(step + beat, end_of), BASS_VELOCITY))
            last_chord, last_top = chord, top
        else:
            top = int(sounding[step]) if sounding[step] >= 0 else 72
            length = max(1, beat // 2)
            for pitch in _close_chord(chord, top, 53):
                chords.append((pitch, step, min(step + length, end_of), ACCOMPANIMENT_VELOCITY))
    last = harmony.chords[-1]  # the final chord rings to the end
    top = int(sounding[last.start]) if sounding[last.start] >= 0 else 72
    chords += [(p, last.start, last.end, ACCOMPANIMENT_VELOCITY) for p in _close_chord(last, top, 53)]
    chords = _dedupe(chords)
    return (Track(plan.names[0], plan.programs[0], tuple(bass)),
            Track(plan.names[1], plan.programs[1], tuple(chords)))


def _dedupe(notes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Overlapping notes of one pitch cut where the next one starts (a synth would merge them)."""
    notes = sorted(set(notes), key=lambda n: (n[0], n[1], -n[2]))
    out: list[tuple[int, int, int, int]] = []
    for note in notes:
        if out and out[-1][0] == note[0] and out[-1][2] > note[1]:
            if out[-1][1] == note[1]:
                continue
            p, s, _, v = out[-1]
            out[-1] = (p, s, note[1], v)
        out.append(note)
    return sorted(out, key=lambda n: (n[1], n[0]))


#: Strum onsets within a bar by metre (steps): a jig's |x.xx.x| in 6/8, a reel's boom-chick in 4/4.
STRUMS = {(6, 8): (0, 4, 6, 10), (9, 8): (0, 4, 6, 10, 12, 16), (12, 8): (0, 4, 6, 10, 12, 16, 18, 22),
          (4, 4): (0, 4, 6, 8, 12, 14), (2, 4): (0, 4, 6), (3, 4): (0, 4, 8), (2, 2): (0, 4, 6, 8, 12, 14)}


def _guitar_voicing(chord: Chord, bass: int) -> list[int]:
    """``bass``, then the root's fifth, octave and third above, as a guitarist's open chord lies."""
    root = _bass_pitch(chord.root, 45, 40, 51)
    pcs = chord.pitch_classes
    upper = [root + ((pcs[2] - root) % 12), root + 12, root + 12 + ((pcs[1] - root) % 12)]
    if chord.quality == "7":
        upper.append(root + 12 + ((pcs[3] - root) % 12))
    return [bass, *sorted(u for u in upper if u > bass)]


def _pick_bass(chord: Chord, previous: int, previous_top: int | None, top: int | None, low: int, high: int,
               final: bool) -> int:
    """The chord's root in the bass, or its fifth or third where the root would move in parallel fifths
    or octaves with the melody (the last chord keeps its root)."""
    pcs = chord.pitch_classes
    options = [(pcs[0], 0.0)] if final else [(pcs[0], 0.0), (pcs[2], 2.5), (pcs[1], 3.5)]
    best, best_cost = previous, float("inf")
    for pc, cost in options:
        pitch = _bass_pitch(pc, previous, low, high)
        cost += 0.15 * abs(pitch - previous)
        if previous_top is not None and top is not None and _parallel(previous_top, top, previous, pitch):
            cost += 10.0
        if cost < best_cost:
            best, best_cost = pitch, cost
    return best


def _strum(melody: Melody, harmony: Harmonisation, plan: Plan) -> tuple[Track, ...]:
    bar = melody.steps_per_bar
    pattern = STRUMS.get(melody.time_signature, tuple(range(0, bar, melody.beat_steps)))
    bass, strums = [], []
    end_of = harmony.chords[-1].end
    first = harmony.chords[0].start
    onsets = sorted({b + o for b in range(0, end_of, bar) for o in pattern if first <= b + o < end_of}
                    | {c.start for c in harmony.chords})
    last = harmony.chords[-1]
    sounding = _melody_at(melody)
    low, low_top, low_chord = 45, None, None
    for step, nxt in itertools.pairwise([*onsets, end_of]):
        chord = harmony.at(step)
        if chord is None:
            continue
        if chord is last and step > last.start:
            continue  # the last chord is struck once and rings
        stop = end_of if chord is last else nxt
        if chord is not low_chord:
            top = int(sounding[step]) if sounding[step] >= 0 else None
            low = _pick_bass(chord, low, low_top, top, 40, 52, chord is last)
            low_chord, low_top = chord, top
        voicing = _guitar_voicing(chord, low)
        accent = step % melody.beat_steps == 0
        velocity = ACCOMPANIMENT_VELOCITY + (6 if accent else -8)
        if step % bar == 0 or step == chord.start:  # the bass note rings to the chord's end or the bar line
            bass.append((low, step, min(chord.end, (step // bar + 1) * bar), BASS_VELOCITY))
        strums += [(p, step, stop, velocity) for p in voicing[1:]]
    return (Track(plan.names[0], plan.programs[0], tuple(_dedupe(bass))),
            Track(plan.names[1], plan.programs[1], tuple(_dedupe(strums))))


def _block(melody: Melody, harmony: Harmonisation, plan: Plan) -> tuple[Track, ...]:
    sounding = _melody_at(melody)
    bass, chords = [], []
    last_bass, last_top = 43, None
    for start, end, chord in _slots(harmony):
        top = int(sounding[start]) if sounding[start] >= 0 else None
        last_bass = _pick_bass(chord, last_bass, last_top, top, 36, 52, chord is harmony.chords[-1])
        last_top = top
        bass.append((last_bass, start, end, BASS_VELOCITY))
        top = top if top is not None else 72
        chords += [(p, start, end, ACCOMPANIMENT_VELOCITY) for p in _close_chord(chord, top, 52)]
    return (Track(plan.names[0], plan.programs[0], tuple(_dedupe(bass))),
            Track(plan.names[1], plan.programs[1], tuple(_dedupe(chords))))


def _drone(melody: Melody, plan: Plan) -> tuple[Track, ...]:
    """Tonic and fifth held bar by bar, and the melody's own five main pitch classes arpeggiated."""
    tonic, _ = melody_key(melody)
    notes = melody.notes()
    first, end = notes[0][1], max(melody.n_steps, notes[-1][2])
    bar = melody.steps_per_bar
    durations = np.zeros(12)
    for pitch, start, stop in notes:
        durations[pitch % 12] += stop - start
    scale = sorted(int(pc) for pc in np.argsort(-durations)[:5] if durations[pc] > 0)
    if tonic not in scale:
        tonic = int(np.argmax(durations))
    low = _bass_pitch(tonic, 43, 38, 49)
    drone, arpeggio = [], []
    bars = list(range(first - first % bar, end, bar))
    for b in bars:
        start, stop = max(b, first), min(b + bar, end)
        drone += [(low, start, stop, BASS_VELOCITY - 14), (low + 7, start, stop, ACCOMPANIMENT_VELOCITY - 14)]
    ladder = [p for p in range(low + 12, low + 27) if p % 12 in scale]
    pattern = ladder[:4] + ladder[4:5] + ladder[3:0:-1]  # up four or five notes of the scale and back
    step = max(2, melody.beat_steps // 2)
    onsets = [s for s in range(first - first % bar, end, step) if s >= first]
    last_onset = notes[-1][1]
    for i, s in enumerate(onsets):
        if s > last_onset:
            break
        arpeggio.append((pattern[i % len(pattern)], s, min(s + 3 * step, end), ACCOMPANIMENT_VELOCITY - 6))
    return (Track(plan.names[0], plan.programs[0], tuple(_dedupe(drone))),
            Track(plan.names[1], plan.programs[1], tuple(_dedupe(arpeggio))))
