"""Training melodies: the music21 corpus for the built-in styles, or a folder of MIDI files.

Every source goes through ``composer.extract``; results are cached as JSON per style.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from composer.errors import ComposerError, MidiError
from composer.extract import Note, Voice, melody_from_midi, melody_from_voices
from composer.melody import Melody
from composer.representation import Representation
from composer.styles import BUILTIN_STYLES

CACHE_VERSION = 2  # 2: melodies in range keep their octave (fold policy "keep")


@dataclass
class CorpusReport:
    """What a corpus build used and skipped, and why."""

    files: int = 0
    pieces: int = 0
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        why = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common()) or "none"
        return f"{self.pieces} melodies from {self.files} files; skipped: {why}"


def corpus_files(style: str) -> list[Path]:
    from music21 import corpus

    spec = BUILTIN_STYLES[style]
    root = Path(corpus.__file__).parent
    files = sorted({p for pattern in spec.corpus_globs for p in root.glob(pattern)})
    return files[: spec.max_files] if spec.max_files else files


def _score_melodies(path: str, all_parts: bool) -> tuple[list[dict], Counter]:
    """Parse one corpus file (a score or an opus of tunes) into melodies."""
    from music21 import converter, stream

    skipped: Counter = Counter()
    try:
        parsed = converter.parse(path)
    except Exception as exc:  # music21 raises many kinds on odd files
        skipped[f"unparsable ({type(exc).__name__})"] += 1
        return [], skipped
    scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    out: list[dict] = []
    for score in scores:
        parts = list(score.parts) or [score]
        for part in parts if all_parts else parts[:1]:
            try:
                melody = _part_melody(part)
            except ComposerError as exc:
                skipped[exc.code] += 1
                continue
            except Exception as exc:  # a malformed tune must not stop the build
                skipped[f"unreadable ({type(exc).__name__})"] += 1
                continue
            fitted = _in_range(melody)
            if fitted is None:
                skipped["range too wide"] += 1
            elif len(fitted.pitches()) < 8:
                skipped["fewer than 8 notes"] += 1
            else:
                out.append(asdict(fitted))
    return out, skipped


def _in_range(melody: Melody) -> Melody | None:
    """The melody moved by octaves into the models' range; None if it spans more than the range (such a
    melody would be folded note by note, which teaches leaps that are not in the music)."""
    rep = Representation()
    pitches = melody.pitches()
    if pitches and max(pitches) - min(pitches) > rep.high_pitch - rep.low_pitch:
        return None
    return rep.fold(melody)


def _part_melody(part) -> Melody:
    from music21 import meter, tempo

    part = part.stripTies()
    flat = part.flatten()
    signatures = flat.getElementsByClass(meter.TimeSignature)
    ts = (signatures[0].numerator, signatures[0].denominator) if signatures else (4, 4)
    marks = flat.getElementsByClass(tempo.MetronomeMark)
    bpm = float(marks[0].getQuarterBPM()) if marks and marks[0].number else 100.0
    shift = _pickup_shift(part, ts)
    notes = []
    for element in flat.notes:
        pitches = [p.midi for p in element.pitches]
        if not pitches or element.quarterLength <= 0:
            continue
        start = float(element.offset) + shift
        notes.append(Note(max(pitches), start, start + float(element.quarterLength)))
    if not notes:
        raise MidiError("no notes", "no_notes")
    return melody_from_voices([Voice(notes)], bpm, ts)


def _pickup_shift(part, ts: tuple[int, int]) -> float:
    """Quarter notes to shift a part by so that an anacrusis ends on a bar line."""
    measures = part.getElementsByClass("Measure")
    if len(measures) < 2:
        return 0.0
    bar = 4.0 * ts[0] / ts[1]
    first = float(measures[0].highestTime)
    return bar - first if 0 < first < bar else 0.0


def build_style_corpus(style: str, cache_dir: Path, workers: int = 2) -> tuple[list[Melody], CorpusReport]:
    """Melodies of a built-in style, parsed from music21's corpus (cached)."""
    cache = cache_dir / f"{style}.json"
    if cache.exists():
        data = json.loads(cache.read_text())
        if data.get("version") == CACHE_VERSION:
            return _from_cache(data)
    files = corpus_files(style)
    spec = BUILTIN_STYLES[style]
    report = CorpusReport(files=len(files))
    melodies: list[dict] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_score_melodies, map(str, files), [spec.all_parts] * len(files))
        for i, (found, skipped) in enumerate(results, 1):
            melodies += found
            report.skipped.update(skipped)
            if i % 25 == 0 or i == len(files):
                print(f"  parsed {i}/{len(files)} files, {len(melodies)} melodies", file=sys.stderr)
    report.pieces = len(melodies)
    _write_cache(cache, melodies, report)
    return [_melody(m) for m in melodies], report


def build_midi_dir_corpus(folder: Path, cache_dir: Path, name: str) -> tuple[list[Melody], CorpusReport]:
    """Melodies from every ``.mid``/``.midi`` file below ``folder`` (cached by file list)."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    key = [f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    cache = cache_dir / f"{name}.json"
    if cache.exists():
        data = json.loads(cache.read_text())
        if data.get("version") == CACHE_VERSION and data.get("key") == key:
            return _from_cache(data)
    report = CorpusReport(files=len(files))
    melodies: list[dict] = []
    for i, path in enumerate(files, 1):
        try:
            fitted = _in_range(melody_from_midi(path))
        except MidiError as exc:
            report.skipped[exc.code] += 1
            continue
        if fitted is None:
            report.skipped["range too wide"] += 1
        elif len(fitted.pitches()) < 8:
            report.skipped["fewer than 8 notes"] += 1
        else:
            melodies.append(asdict(fitted))
        if i % 50 == 0 or i == len(files):
            print(f"  read {i}/{len(files)} files, {len(melodies)} melodies", file=sys.stderr)
    report.pieces = len(melodies)
    _write_cache(cache, melodies, report, key)
    return [_melody(m) for m in melodies], report


def _melody(d: dict) -> Melody:
    return Melody(tuple(d["events"]), tuple(d["time_signature"]), d["tempo_bpm"], d["program"])


def _write_cache(
    cache: Path, melodies: list[dict], report: CorpusReport, key: list[str] | None = None
) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    payload = {"version": CACHE_VERSION, "key": key, "files": report.files,
               "skipped": dict(report.skipped), "melodies": melodies}
    cache.write_text(json.dumps(payload))


def _from_cache(data: dict) -> tuple[list[Melody], CorpusReport]:
    melodies = [_melody(m) for m in data["melodies"]]
    report = CorpusReport(files=data["files"], pieces=len(melodies), skipped=Counter(data["skipped"]))
    return melodies, report
