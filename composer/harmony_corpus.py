"""The harmoniser's training data: the four voices of the Bach chorales in music21's corpus, parsed once.

Each chorale with exactly four parts becomes a record of its key (music21's Krumhansl-Schmuckler
analysis), metre and the notes of each voice on the melodies' grid of 16th-note steps, with step 0 on a
bar line (an anacrusis is shifted as the melody corpus shifts it). Chord labels are computed from these
notes at training time (``composer.harmony.label_chords``), so the labelling can change without a
re-parse. Parsing takes a minute or two of CPU; the result is cached as JSON in ``data/cache``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from composer.melody import STEPS_PER_QUARTER

CACHE_NAME = "harmony_chorales.json"
#: Bump when the record format changes: an old cache is then parsed again.
CACHE_VERSION = 1


def chorale_files() -> list[Path]:
    from music21 import corpus

    root = Path(corpus.__file__).parent / "bach"
    return sorted(p for p in root.iterdir() if p.suffix in (".mxl", ".xml", ".krn", ""))


def parse_chorale(path: Path) -> dict | None:
    """One four-part chorale as a record, or None (not four parts, odd metre, unparsable)."""
    from music21 import converter, meter

    try:
        score = converter.parse(str(path))
    except Exception:  # music21 raises many kinds on odd files
        return None
    parts = list(getattr(score, "parts", []))
    if len(parts) != 4:
        return None
    signatures = parts[0].flatten().getElementsByClass(meter.TimeSignature)
    ts = (signatures[0].numerator, signatures[0].denominator) if signatures else (4, 4)
    if (16 * ts[0]) % ts[1]:
        return None
    try:
        key = score.analyze("key")
    except Exception:
        return None
    from composer.corpus import _pickup_shift  # the melody corpus's own alignment of an anacrusis

    shift = _pickup_shift(parts[0], ts)
    voices = []
    for part in parts:
        notes = []
        for element in part.stripTies().flatten().notes:
            pitches = [p.midi for p in element.pitches]
            if not pitches or element.quarterLength <= 0:
                continue
            start = round((float(element.offset) + shift) * STEPS_PER_QUARTER)
            end = round((float(element.offset) + shift + float(element.quarterLength)) * STEPS_PER_QUARTER)
            if end > start:
                notes.append((max(pitches) if not voices else min(pitches), start, end))
        if not notes:
            return None
        voices.append(notes)
    return {"file": path.name, "tonic": key.tonic.pitchClass, "minor": key.mode == "minor",
            "time_signature": list(ts), "voices": voices}


def load_chorales(cache_dir: Path, files: list[Path] | None = None, verbose: bool = True) -> list[dict]:
    """The parsed chorales, from ``cache_dir/harmony_chorales.json`` when it is there and current."""
    cache = cache_dir / CACHE_NAME
    if files is None and cache.is_file():
        data = json.loads(cache.read_text())
        if data.get("version") == CACHE_VERSION:
            return data["chorales"]
    chorales = []
    paths = files if files is not None else chorale_files()
    seen: set[tuple] = set()
    for i, path in enumerate(paths):
        record = parse_chorale(path)
        if record is None:
            continue
        fingerprint = tuple(p for p, _, _ in record["voices"][0])
        if fingerprint in seen:  # the same chorale harmonised twice in the corpus: keep it once
            continue
        seen.add(fingerprint)
        chorales.append(record)
        if verbose and (i + 1) % 50 == 0:
            print(f"harmony corpus: {i + 1}/{len(paths)} files, {len(chorales)} chorales", file=sys.stderr)
    if files is None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"version": CACHE_VERSION, "chorales": chorales}))
    return chorales
