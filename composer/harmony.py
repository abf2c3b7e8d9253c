"""Chords for a melody, learnt from the four-part Bach chorales: a hidden Markov model decoded by Viterbi.

The chords are the hidden states: 12 roots relative to the tonic x 4 qualities (major, minor, diminished,
dominant seventh). What the model learnt from the chorales (``python -m composer train-harmony``):

- transitions beat to beat, P(chord | previous chord), one table for major keys and one for minor ones,
  with the first chord, the last chord and the cadence (the chord before the last one) as tables of their
  own; counts smoothed by backing off to how common each chord is;
- what the melody does over a chord, P(melody pitch - chord root | quality), separately for the note
  sounding on the chord's onset and for the notes that pass during it (Bach's soprano over his chords).

Decoding runs Viterbi over the whole melody, one chord per slot (a beat for a chorale, half a bar or a
bar for dance styles), so the sequence is the likeliest as a whole and ends with a cadence: the slots
from the last note on hold one final chord, scored by the learnt final-chord and cadence tables. Two
weights are tuned on held-out chorales: how much the melody counts against the chord sequence, and a
penalty for a melody note on a slot's onset that is not a chord tone. A style may narrow the chord
vocabulary (modal triads, or major/minor/seventh chords for dances). Numpy only; a 16-bar melody takes
about a millisecond.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from composer.errors import ComposerError
from composer.keys import MODE_MINOR, estimate_keys, key_name, parse_key
from composer.melody import HOLD, REST, Melody, canonical

QUALITIES = ("maj", "min", "dim", "7")
INTERVALS = {"maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "7": (0, 4, 7, 10)}
N_QUALITIES = len(QUALITIES)
N_CHORDS = 12 * N_QUALITIES
#: Metrical places a chord can start on (``metrical_place``): bar line, half bar, other beats.
N_PLACES = 3
#: TONES[c, pc]: chord ``c = root * 4 + quality`` contains pitch class ``pc`` (both relative to one origin).
TONES = np.zeros((N_CHORDS, 12), dtype=bool)
for _root in range(12):
    for _q, _name in enumerate(QUALITIES):
        for _i in INTERVALS[_name]:
            TONES[_root * N_QUALITIES + _q, (_root + _i) % 12] = True

#: Where the trained harmoniser lives (not a style: ``ModelLibrary`` lists folders with config.json and
#: weights.npz, and the style cards are ``models/*/card.json``, so this one sits a level deeper).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "_harmony" / "chorales"
MODEL_FILE = "harmoniser.npz"
MODEL_ENV = "COMPOSER_HARMONY"
#: Vocabularies a style can ask for (see ``vocabulary_mask``).
VOCABULARIES = ("all", "modal", "dance")
_SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
_ROMAN = ("I", "bII", "II", "bIII", "III", "IV", "#IV", "V", "bVI", "VI", "bVII", "VII")


class HarmonyError(ComposerError):
    """The harmoniser's model is missing or unreadable (code ``no_harmony_model``)."""


@dataclass(frozen=True)
class Chord:
    """A chord from ``start`` to ``end`` (steps, end exclusive); ``root`` is an absolute pitch class."""

    start: int
    end: int
    root: int
    quality: str

    @property
    def pitch_classes(self) -> tuple[int, ...]:
        return tuple((self.root + i) % 12 for i in INTERVALS[self.quality])

    def name(self, flats: bool = False) -> str:
        """``"C"``, ``"F#m"``, ``"Bbdim"``, ``"G7"``."""
        root = (_FLAT_NAMES if flats else _SHARP_NAMES)[self.root]
        return root + {"maj": "", "min": "m", "dim": "dim", "7": "7"}[self.quality]

    def figure(self, flats: bool = False) -> str:
        """The chord as a music21 ``ChordSymbol`` figure (flats written ``-``)."""
        name = self.name(flats)
        return name[0] + name[1:].replace("b", "-", 1) if len(name) > 1 and name[1] == "b" else name

    def roman(self, tonic: int, minor: bool) -> str:
        """Degree of the root from the tonic with the quality: ``V7``, ``ii``, ``vii°``."""
        numeral = _ROMAN[(self.root - tonic) % 12]
        if self.quality in ("min", "dim"):
            numeral = numeral.lower()
        return numeral + {"maj": "", "min": "", "dim": "°", "7": "7"}[self.quality]


@dataclass(frozen=True)
class Harmonisation:
    """The chords of a melody in its key; ``chords`` are contiguous and start with the first note."""

    chords: tuple[Chord, ...]
    tonic: int
    minor: bool
    #: Steps per chord slot the harmoniser was run with.
    rhythm_steps: int

    @property
    def flats(self) -> bool:
        """Spell roots with flats (F major, Bb major, C minor...)."""
        return _uses_flats(self.tonic, self.minor)

    def symbols(self) -> list[tuple[int, str]]:
        """``(step, music21 figure)`` for each chord change, for the lead sheet."""
        out: list[tuple[int, str]] = []
        previous = None
        for chord in self.chords:
            key = (chord.root, chord.quality)
            if key != previous:
                out.append((chord.start, chord.figure(self.flats)))
            previous = key
        return out

    def at(self, step: int) -> Chord | None:
        for chord in self.chords:
            if chord.start <= step < chord.end:
                return chord
        return None


def _uses_flats(tonic: int, minor: bool) -> bool:
    major_tonic = (tonic + 3) % 12 if minor else tonic
    return major_tonic in (5, 10, 3, 8, 1)  # F, Bb, Eb, Ab, Db majors and their relative minors


# --------------------------------------------------------------------------------------------- labels

def label_beats(voices: list[list[tuple[int, int, int]]], n_steps: int, beat: int) -> np.ndarray:
    """The chord of each beat of a four-part texture, by template matching: ``root * 4 + quality`` with an
    absolute root, or -1 where nothing sounds.

    Each pitch class weighs the steps it sounds in the beat plus a beat's worth if it sounds on the beat's
    onset (passing notes count less); a chord scores the weight of its tones minus the weight of the
    others, less a penalty for a missing root or third and for a fourth tone, plus a little when the bass
    has the root. Seventh chords other than the dominant fall to their triad (ii7 -> ii, vii°7 -> vii°).
    """
    n_beats = -(-n_steps // beat)
    weights = np.zeros((n_beats, 12))
    bass = np.full(n_beats, -1)
    bass_pitch = np.full(n_beats, 999)
    for notes in voices:
        for pitch, start, end in notes:
            first, last = start // beat, (end - 1) // beat
            for b in range(first, min(last, n_beats - 1) + 1):
                t0, t1 = b * beat, (b + 1) * beat
                overlap = min(end, t1) - max(start, t0)
                if overlap <= 0:
                    continue
                weights[b, pitch % 12] += overlap
                if start <= t0 < end:
                    weights[b, pitch % 12] += beat
                    if pitch < bass_pitch[b]:
                        bass_pitch[b], bass[b] = pitch, pitch % 12
    total = weights.sum(axis=1, keepdims=True)
    tones = TONES.astype(float)
    covered = weights @ tones.T
    score = 2 * covered - total
    roots = np.arange(N_CHORDS) // N_QUALITIES
    thirds = (roots + np.array([INTERVALS[QUALITIES[c % N_QUALITIES]][1] for c in range(N_CHORDS)])) % 12
    score -= 0.6 * total * (weights[:, roots] == 0)
    score -= 0.4 * total * (weights[:, thirds] == 0)
    score -= 0.15 * total * (tones.sum(axis=1) > 3)
    score += 0.1 * total * (bass[:, None] == roots[None, :])
    labels = score.argmax(axis=1)
    labels[total[:, 0] == 0] = -1
    return labels


def relative(labels: np.ndarray, tonic: int) -> np.ndarray:
    """Absolute chord labels moved so the tonic is 0 (-1 stays)."""
    root, quality = labels // N_QUALITIES, labels % N_QUALITIES
    out = ((root - tonic) % 12) * N_QUALITIES + quality
    return np.where(labels < 0, -1, out)


# ---------------------------------------------------------------------------------------------- model

@dataclass
class HarmonyModel:
    """Log-probability tables; index 0 of the first axis is major keys, 1 minor keys."""

    log_start: np.ndarray  # (2, 48)
    log_trans: np.ndarray  # (2, 3, 48, 48) mode, metrical place of the next chord, previous -> next
    log_final: np.ndarray  # (2, 48)
    log_cadence: np.ndarray  # (2, 48, 48) the chord before the final one -> the final one
    log_emit: np.ndarray  # (4, 2, 12) quality, (onset, passing), melody pc - root
    chord_counts: np.ndarray  # (2, 48) beats of each chord in training (for the baseline)
    emission_weight: float = 1.0
    onset_penalty: float = 3.0

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, log_start=self.log_start, log_trans=self.log_trans,
                            log_final=self.log_final, log_cadence=self.log_cadence, log_emit=self.log_emit,
                            chord_counts=self.chord_counts,
                            params=np.array([self.emission_weight, self.onset_penalty]))

    @classmethod
    def load(cls, path: Path) -> HarmonyModel:
        with np.load(path) as data:
            params = data["params"]
            return cls(data["log_start"], data["log_trans"], data["log_final"], data["log_cadence"],
                       data["log_emit"], data["chord_counts"], float(params[0]), float(params[1]))


def model_path() -> Path:
    env = os.environ.get(MODEL_ENV)
    return Path(env) if env else DEFAULT_MODEL_DIR / MODEL_FILE


@functools.cache
def _load_cached(path: str) -> HarmonyModel:
    return HarmonyModel.load(Path(path))


def load_model(path: Path | None = None) -> HarmonyModel:
    """The trained harmoniser (``$COMPOSER_HARMONY`` or ``models/_harmony/chorales``), loaded once."""
    path = path or model_path()
    if not path.is_file():
        raise HarmonyError(f"no harmoniser at {path}: run 'python -m composer train-harmony'",
                           "no_harmony_model")
    return _load_cached(str(path.resolve()))


def _backoff(counts: np.ndarray, unigram: np.ndarray, strength: float) -> np.ndarray:
    """Rows of ``counts`` smoothed towards ``unigram`` (a Dirichlet prior of ``strength``), as logs."""
    rows = counts + strength * unigram
    return np.log(rows / rows.sum(axis=-1, keepdims=True))


def fit(pieces: list[dict], emission_weight: float = 1.0, onset_penalty: float = 3.0,
        smoothing: float = 4.0) -> HarmonyModel:
    """Count a model from training pieces (``training_piece`` records)."""
    start = np.zeros((2, N_CHORDS))
    trans = np.zeros((2, N_PLACES, N_CHORDS, N_CHORDS))
    final = np.zeros((2, N_CHORDS))
    cadence = np.zeros((2, N_CHORDS, N_CHORDS))
    emit = np.zeros((N_QUALITIES, 2, 12))
    for piece in pieces:
        mode = int(piece["minor"])
        known = [(c, place) for c, place in zip(piece["labels"], piece["places"], strict=True) if c >= 0]
        if not known:
            continue
        labels = [c for c, _ in known]
        start[mode, labels[0]] += 1
        for (a, _), (b, place) in itertools.pairwise(known):
            trans[mode, place, a, b] += 1
        final[mode, labels[-1]] += 1
        changes = [c for i, c in enumerate(labels) if i == 0 or c != labels[i - 1]]
        if len(changes) >= 2:
            cadence[mode, changes[-2], changes[-1]] += 1
        for b, pc_weights in enumerate(piece["melody"]):
            chord = piece["labels"][b]
            if chord < 0:
                continue
            root, quality = divmod(chord, N_QUALITIES)
            for strong, pc, weight in pc_weights:
                emit[quality, 0 if strong else 1, (pc - root) % 12] += weight
    counts = trans.sum(axis=(1, 2)) + start
    unigram = (counts + 0.5) / (counts + 0.5).sum(axis=1, keepdims=True)
    log_trans = np.stack([np.stack([_backoff(trans[m, p], unigram[m], smoothing) for p in range(N_PLACES)])
                          for m in range(2)])
    log_start = np.stack([_backoff(start[m], unigram[m], smoothing) for m in range(2)])
    log_final = np.stack([_backoff(final[m], unigram[m], smoothing) for m in range(2)])
    log_cadence = np.stack([_backoff(cadence[m], unigram[m], smoothing) for m in range(2)])
    emit += 0.5
    log_emit = np.log(emit / emit.sum(axis=-1, keepdims=True))
    return HarmonyModel(log_start, log_trans, log_final, log_cadence, log_emit, counts,
                        emission_weight, onset_penalty)


def training_piece(record: dict) -> dict:
    """A parsed chorale (``harmony_corpus``) as labels relative to its key per beat, with its soprano's
    pitch classes relative to the key per beat as ``(sounds on the onset, pc, weight)``."""
    voices = [[tuple(n) for n in v] for v in record["voices"]]
    melody = soprano(record)
    beat = melody.beat_steps
    n_steps = max(end for notes in voices for _, _, end in notes)
    labels = relative(label_beats(voices, n_steps, beat), record["tonic"])
    per_beat: list[list[tuple[bool, int, float]]] = [[] for _ in range(len(labels))]
    for pitch, start, end in voices[0]:
        for b in range(start // beat, min((end - 1) // beat, len(labels) - 1) + 1):
            t0, t1 = b * beat, (b + 1) * beat
            overlap = min(end, t1) - max(start, t0)
            if overlap > 0:
                per_beat[b].append((start <= t0, (pitch - record["tonic"]) % 12, overlap / beat))
    places = [metrical_place(b * beat, melody) for b in range(len(labels))]
    return {"minor": bool(record["minor"]), "labels": [int(c) for c in labels], "places": places,
            "melody": per_beat}


def metrical_place(step: int, melody: Melody) -> int:
    """0 on a bar line, 1 on the half bar of a bar of an even number of beats, 2 elsewhere."""
    bar, beat = melody.steps_per_bar, melody.beat_steps
    position = step % bar
    if position == 0:
        return 0
    return 1 if (bar // beat) % 2 == 0 and position * 2 == bar else 2


def soprano(record: dict, voice: int = 0) -> Melody:
    """A voice of a parsed chorale as a ``Melody`` with the chorale's key and metre."""
    notes = record["voices"][voice]
    n_steps = max(end for _, _, end in notes)
    events = [HOLD] * n_steps
    position = 0
    for pitch, start, end in sorted(notes, key=lambda n: n[1]):
        if start < position:  # overlapping notes in one voice: keep the first
            continue
        if start > position:
            events[position] = REST
        events[start] = pitch
        position = end
    if position < n_steps:
        events[position] = REST
    return Melody(tuple(canonical(events)), time_signature=tuple(record["time_signature"]),
                  key=key_name(record["tonic"], bool(record["minor"])))


# ------------------------------------------------------------------------------------------- decoding

def melody_key(melody: Melody) -> tuple[int, bool]:
    """(tonic pitch class, minor) from ``melody.key``, else estimated from its pitches."""
    if melody.key:
        try:
            tonic, mode = parse_key(melody.key)
            return tonic, MODE_MINOR[mode]
        except ComposerError:
            pass
    tonic, minor = estimate_keys(np.asarray(melody.events)[None, :])
    return int(tonic[0]), bool(minor[0])


def melody_scale(melody: Melody, tonic: int, minor: bool) -> set[int]:
    """Pitch classes (relative to the tonic) the melody's mode has: those it dwells on (2% of its
    sounding time or more) plus the key's diatonic ones that none of them displaces by a semitone."""
    durations = np.zeros(12)
    for pitch, start, end in melody.notes():
        durations[(pitch - tonic) % 12] += end - start
    used = {pc for pc in range(12) if durations[pc] >= 0.02 * max(durations.sum(), 1)}
    diatonic = (0, 2, 3, 5, 7, 8, 10) if minor else (0, 2, 4, 5, 7, 9, 11)
    scale = set(used)
    for pc in diatonic:
        if pc not in used and (pc + 1) % 12 not in used and (pc - 1) % 12 not in used:
            scale.add(pc)
    return scale


def vocabulary_mask(vocabulary: str, scale: set[int], minor: bool) -> np.ndarray:
    """Which relative chords a style may use: ``all`` (the chorales' 48), ``modal`` (major and minor
    triads within the melody's scale), ``dance`` (major, minor and dominant-seventh chords within the
    scale, plus V and V7)."""
    if vocabulary == "all":
        return np.ones(N_CHORDS, dtype=bool)
    in_scale = np.array([all(pc in scale for pc in np.nonzero(TONES[c])[0]) for c in range(N_CHORDS)])
    quality = np.arange(N_CHORDS) % N_QUALITIES
    if vocabulary == "modal":
        mask = in_scale & (quality <= 1)
    elif vocabulary == "dance":
        mask = in_scale & (quality != 2)
        mask[7 * N_QUALITIES + 0] = mask[7 * N_QUALITIES + 3] = True
    else:
        raise ValueError(f"unknown vocabulary {vocabulary!r}")
    mask[0 * N_QUALITIES + (1 if minor else 0)] = True  # the tonic chord is always there
    return mask


def _slot_emissions(melody: Melody, tonic: int, slots: list[tuple[int, int]], model: HarmonyModel
                    ) -> np.ndarray:
    """(slots, 48) log-likelihood of each slot's melody under each relative chord, weighted."""
    roots = np.arange(N_CHORDS) // N_QUALITIES
    qualities = np.arange(N_CHORDS) % N_QUALITIES
    notes = melody.notes()
    out = np.zeros((len(slots), N_CHORDS))
    i = 0
    for s, (t0, t1) in enumerate(slots):
        while i < len(notes) and notes[i][2] <= t0:
            i += 1
        j = i
        while j < len(notes) and notes[j][1] < t1:
            pitch, start, end = notes[j]
            rel = (pitch - tonic) % 12
            intervals = (rel - roots) % 12
            if start <= t0:  # sounding on the slot's onset
                out[s] += model.log_emit[qualities, 0, intervals]
                out[s] -= model.onset_penalty * ~TONES[np.arange(N_CHORDS), rel]
            else:
                weight = (min(end, t1) - start) / (t1 - t0)
                out[s] += weight * model.log_emit[qualities, 1, intervals]
            j += 1
    return out


def harmonise(melody: Melody, model: HarmonyModel | None = None, *, rhythm_steps: int | None = None,
              vocabulary: str = "all") -> Harmonisation:
    """The likeliest chord sequence for ``melody``, one chord per ``rhythm_steps`` (default: a beat),
    from its first note to its end, ending with a cadence on the last note."""
    model = model or load_model()
    tonic, minor = melody_key(melody)
    mode = int(minor)
    rhythm = rhythm_steps or melody.beat_steps
    notes = melody.notes()
    if not notes:
        return Harmonisation((), tonic, minor, rhythm)
    first, last_onset = notes[0][1], notes[-1][1]
    end = max(melody.n_steps, notes[-1][2])
    boundaries = [*list(range(first // rhythm * rhythm, end, rhythm)), end]
    slots = [(max(a, first), b) for a, b in itertools.pairwise(boundaries) if b > max(a, first)]
    final = next(s for s, (t0, t1) in enumerate(slots) if t0 <= last_onset < t1)
    mask = vocabulary_mask(vocabulary, melody_scale(melody, tonic, minor), minor)
    blocked = np.where(mask, 0.0, -np.inf)
    emissions = model.emission_weight * _slot_emissions(melody, tonic, slots, model)
    # The final chord holds from the last note's slot to the end: its emissions add up.
    emissions[final] = emissions[final:].sum(axis=0)
    n = final + 1
    score = model.log_start[mode] + emissions[0] + blocked
    if n == 1:
        score = score + model.log_final[mode]
    back = np.zeros((n, N_CHORDS), dtype=int)
    for s in range(1, n):
        if s == n - 1:
            step = model.log_cadence[mode].copy()
            np.fill_diagonal(step, -1e3)  # a cadence is a change of chord
            step += model.log_final[mode][None, :]
        else:
            step = model.log_trans[mode, metrical_place(slots[s][0], melody)]
        total = score[:, None] + step
        back[s] = total.argmax(axis=0)
        score = total[back[s], np.arange(N_CHORDS)] + emissions[s] + blocked
    path = [int(score.argmax())]
    for s in range(n - 1, 0, -1):
        path.append(int(back[s, path[-1]]))
    path.reverse()
    path += [path[-1]] * (len(slots) - n)
    chords = []
    for (t0, t1), c in zip(slots, path, strict=True):
        root, quality = divmod(c, N_QUALITIES)
        chord = Chord(t0, t1, (root + tonic) % 12, QUALITIES[quality])
        if chords and (chords[-1].root, chords[-1].quality) == (chord.root, chord.quality):
            chords[-1] = Chord(chords[-1].start, t1, chord.root, chord.quality)
        else:
            chords.append(chord)
    return Harmonisation(tuple(chords), tonic, minor, rhythm)


def write_card(folder: Path, card: dict) -> None:
    """``card.json`` and a README that says what the harmoniser is, from its card."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    ev = card.get("evaluation", {})
    lines = [
        "# Harmoniser: chords learnt from the Bach chorales",
        "",
        "Not a style model: the chord model `composer/harmony.py` decodes (Viterbi) under every melody.",
        "",
        f"- Data: {card['source']}; {card['chorales']} four-part chorales "
        f"({card['split']['train']} train / {card['split']['validation']} validation / "
        f"{card['split']['test']} test, by chorale, seed {card['split']['seed']}); "
        f"{card['beats']} labelled beats.",
        f"- Labels: {card['labels']}",
        f"- Model: {card['model']}",
        f"- Tuned on validation: emission weight {card['emission_weight']}, onset penalty "
        f"{card['onset_penalty']} (validation accuracy {card['validation_accuracy']}).",
        f"- Made with `{card['command']}` in {card['train_seconds']} s ({card['machine']}).",
        "",
        "Held-out test chorales (Bach's soprano harmonised one chord per beat, compared with Bach's chords):",
        "",
        "| check | harmoniser | Bach / baseline |",
        "| --- | --- | --- |",
    ]
    if ev:
        lines += [
            f"| Bach's chord, root and quality | {ev['accuracy']:.1%} | "
            f"baseline {ev['baseline_accuracy']:.1%} |",
            f"| Bach's chord, triad (V7 = V) | {ev['triad_accuracy']:.1%} | "
            f"baseline {ev['baseline_triad_accuracy']:.1%} |",
            f"| strong-beat melody notes in the chord | {ev['strong_chord_tones']:.1%} | "
            f"Bach {ev['bach_strong_chord_tones']:.1%} |",
            f"| chord changes per bar | {ev['changes_per_bar']:.2f} | "
            f"Bach {ev['bach_changes_per_bar']:.2f} |",
            f"| parallel 5ths/8ves melody-bass per 100 beats | {ev['parallels_per_100']:.2f} | "
            f"Bach {ev['bach_parallels_per_100']:.2f} |",
        ]
    (folder / "README.md").write_text("\n".join(lines) + "\n")
