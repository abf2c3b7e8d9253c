"""A seed corpus of real MIDI files and the ways the fuzzers mutate them.

Seeds are the small files in ``tests/fixtures/midi`` (made from the music21 corpus and with
pretty_midi by ``python tests/midi_corpus.py``) plus the ``.mid`` test files music21 ships.
Mutations are plain functions ``(data, rng) -> bytes`` so hypothesis, the long-run benchmark and a
reader of a failure report all replay the same thing.
"""

from __future__ import annotations

import io
import random
import struct
from collections.abc import Callable
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "midi"
#: music21's own test files above this size add parsing time but no new structure.
MAX_SHIPPED_BYTES = 20_000


def shipped_midi_files() -> list[Path]:
    """The ``.mid`` files that the installed music21 package ships for its own tests."""
    import music21

    root = Path(music21.__file__).parent
    return sorted(p for p in root.rglob("*.mid") if p.stat().st_size <= MAX_SHIPPED_BYTES)


def seed_corpus() -> dict[str, bytes]:
    """Name -> bytes of every seed file, fixtures first."""
    paths = sorted(FIXTURES.glob("*.mid")) + shipped_midi_files()
    return {p.name: p.read_bytes() for p in paths}


# --- building blocks -------------------------------------------------------------------------

def smf(tracks: list[bytes], tpq: int = 96, fmt: int = 1, ntracks: int | None = None) -> bytes:
    """A Standard MIDI File from raw track bodies (event bytes without the MTrk header)."""
    header = b"MThd" + struct.pack(">IHHH", 6, fmt, len(tracks) if ntracks is None else ntracks, tpq)
    return header + b"".join(b"MTrk" + struct.pack(">I", len(t)) + t for t in tracks)


def vlq(value: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def chunks(data: bytes) -> list[tuple[int, bytes, int]]:
    """``(offset, id, declared length)`` of each chunk, walking the declared lengths."""
    out = []
    pos = 0
    while pos + 8 <= len(data):
        length = struct.unpack_from(">I", data, pos + 4)[0]
        out.append((pos, data[pos : pos + 4], length))
        pos += 8 + length
    return out


# --- mutators --------------------------------------------------------------------------------

def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def random_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        if out:
            out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def splice(data: bytes, rng: random.Random) -> bytes:
    """Insert, delete or duplicate a short run of bytes."""
    if not data:
        return data
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randint(1, 64))
    choice = rng.randrange(3)
    if choice == 0:
        return data[:i] + rng.randbytes(j - i) + data[i:]
    if choice == 1:
        return data[:i] + data[j:]
    return data[:j] + data[i:j] * rng.randint(1, 50) + data[j:]


def wrong_chunk_length(data: bytes, rng: random.Random) -> bytes:
    found = chunks(data)
    if not found:
        return data
    pos, _, length = rng.choice(found)
    new = rng.choice([0, 1, length - 1, length + 1, length * 2, 2**31, 2**32 - 1, rng.randrange(2**32)])
    return data[: pos + 4] + struct.pack(">I", max(0, new) % 2**32) + data[pos + 8 :]


def header_fields(data: bytes, rng: random.Random) -> bytes:
    """Odd format, track count or time division (zero, SMPTE, huge)."""
    if len(data) < 14:
        return data
    out = bytearray(data)
    field = rng.choice([8, 10, 12])
    value = rng.choice([0, 1, 2, 3, 255, 256, 0x7FFF, 0x8000, 0xE728, 0xFFFF, rng.randrange(65536)])
    out[field : field + 2] = struct.pack(">H", value)
    return bytes(out)


def huge_delta(data: bytes, rng: random.Random) -> bytes:
    """Put a 4-byte (or over-long) delta time in front of a random event."""
    delta = rng.choice([vlq(0x0FFFFFFF), vlq(rng.randrange(2**28)), b"\xff\xff\xff\xff\x7f"])
    body = b"\x00\x90\x3c\x40" + delta + b"\x80\x3c\x40"
    return _append_track(data, body * rng.randint(1, 3))


def zero_tempo(data: bytes, rng: random.Random) -> bytes:
    tempo = rng.choice([0, 1, 0xFFFFFF])
    body = b"\x00\xff\x51\x03" + tempo.to_bytes(3, "big") + rng.choice([b"", b"\x00\xff\x51\x00"])
    return _append_track(data, body + b"\x00\x90\x40\x40\x10\x80\x40\x00", first=True)


def running_status_abuse(data: bytes, rng: random.Random) -> bytes:
    """Data bytes with no status, running status over meta and sysex, status bytes as data."""
    body = rng.choice(
        [
            b"\x00\x3c\x40",  # running status with nothing to run on
            b"\x00\x90\x3c\x40\x00\xff\x01\x00\x00\x3e\x40\x10\x3c\x00\x00\x3e\x00",
            b"\x00\x90\x3c\x40\x00\xf0\x01\xf7\x00\x3e\x40\x10\x3c\x00",
            b"\x00\x90\xfe\xff\x10\x80\x90\x90",  # status bytes where data belongs
            b"\x00\xf4\x00\xf9\x00\xfd",  # undefined system messages
            b"\x00\x90" + b"\x00\x3c\x40\x00\x3c\x00" * rng.randint(1, 2000),
        ]
    )
    return _append_track(data, body)


def many_tracks(data: bytes, rng: random.Random) -> bytes:
    n = rng.choice([257, 1000, 5000, 32767, 65535])
    tracks = [b"\x00\x90\x3c\x40\x08\x80\x3c\x00"] * min(n, rng.choice([0, 10, n]))
    return smf(tracks, ntracks=n)


def many_notes(data: bytes, rng: random.Random) -> bytes:
    """Up to hundreds of thousands of notes (all at once, one pitch or many), near the size limit."""
    n = rng.choice([1000, 50_000, 199_999, 200_001, 340_000])
    pitches = b"\x3c" * n if rng.random() < 0.5 else (bytes(range(24, 120)) * (n // 96 + 1))[:n]
    events = bytearray(3 * n)  # delta 0, pitch, velocity: running status after the first
    events[1::3] = pitches
    ons = bytearray(events)
    ons[2::3] = b"\x40" * n
    return smf([b"\x00\x90" + ons[1:] + b"\x7f\x80" + events[1:]])


def garbage_after_header(data: bytes, rng: random.Random) -> bytes:
    head = data[:14] if data.startswith(b"MThd") else smf([])
    return head + rng.randbytes(rng.randint(0, 4096))


def rmid(data: bytes, rng: random.Random) -> bytes:
    """Wrap in RIFF RMID, sometimes with a lying size or a missing data chunk."""
    payload = data if rng.random() < 0.7 else data[: rng.randrange(len(data) + 1)]
    inner = b"data" + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) % 2)
    if rng.random() < 0.2:
        inner = b"LIST" + struct.pack("<I", 4) + b"INFO" + inner
    form = b"RMID" if rng.random() < 0.9 else b"WAVE"
    size = len(inner) + 4 if rng.random() < 0.8 else rng.randrange(2**32)
    return b"RIFF" + struct.pack("<I", size) + form + inner


def _append_track(data: bytes, body: bytes, first: bool = False) -> bytes:
    """``data`` with one more track (and the track count raised), or a new file with that track."""
    if not data.startswith(b"MThd") or len(data) < 14:
        return smf([body])
    count = struct.unpack_from(">H", data, 10)[0]
    out = data[:10] + struct.pack(">H", min(count + 1, 0xFFFF)) + data[12:]
    track = b"MTrk" + struct.pack(">I", len(body)) + body
    if first:
        header_end = 8 + struct.unpack_from(">I", data, 4)[0]
        return out[:header_end] + track + out[header_end:]
    return out + track


MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    f.__name__: f
    for f in (
        truncate, flip_bytes, random_bytes, splice, wrong_chunk_length, header_fields, huge_delta,
        zero_tempo, running_status_abuse, many_tracks, many_notes, garbage_after_header, rmid,
    )
}


#: ``many_notes`` costs about a second an input; drawn 50 times less often it keeps a long run varied.
WEIGHTS = {name: 0.02 if name == "many_notes" else 1.0 for name in MUTATORS}


def mutate(data: bytes, rng: random.Random, rounds: int = 1) -> tuple[bytes, list[str]]:
    """Apply ``rounds`` random mutators (drawn by ``WEIGHTS``); return the result and their names."""
    names = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()), k=rounds)
    for name in names:
        data = MUTATORS[name](data, rng)
    return data, names


# --- making the fixtures ---------------------------------------------------------------------

def make_fixtures() -> None:
    """Write the seed files: pieces from the music21 corpus and a pretty_midi arrangement."""
    from music21 import corpus

    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, work in (
        ("bach_bwv66_6", "bach/bwv66.6"),
        ("bach_bwv269", "bach/bwv269"),
        ("essen_altdeu10_1", "essenFolksong/altdeu10"),
        ("ryans_reel", "ryansMammoth/7thRegimentReel.abc"),
    ):
        parsed = corpus.parse(work, number=1) if "essen" in work else corpus.parse(work)
        if hasattr(parsed, "scores"):
            parsed = parsed.scores[0]
        (FIXTURES / f"{name}.mid").write_bytes(_music21_midi(parsed))
    (FIXTURES / "band_pretty_midi.mid").write_bytes(_band())


def _music21_midi(stream: object) -> bytes:
    from music21 import midi

    midi_file = midi.translate.streamToMidiFile(stream)
    return midi_file.writestr()


def _band() -> bytes:
    """Melody, chords, bass and drums, with a tempo and metre change: every choice the path makes."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=132)
    pm.time_signature_changes += [pretty_midi.TimeSignature(3, 4, 0), pretty_midi.TimeSignature(6, 8, 8)]
    beat = 60 / 132
    lead = pretty_midi.Instrument(73, name="Flute")
    chords = pretty_midi.Instrument(0, name="Piano")
    bass = pretty_midi.Instrument(32, name="Bass")
    drums = pretty_midi.Instrument(0, is_drum=True, name="Drums")
    line = [72, 74, 76, 77, 79, 81, 79, 77, 76, 74, 72, 71]
    for bar in range(8):
        t = bar * 3 * beat
        for i, p in enumerate(line[bar % 4 : bar % 4 + 6]):
            lead.notes.append(pretty_midi.Note(90, p, t + i * beat / 2, t + (i + 1) * beat / 2))
        root = (48, 53, 55, 48)[bar % 4]
        for p in (root + 12, root + 16, root + 19):
            chords.notes.append(pretty_midi.Note(70, p, t, t + 3 * beat))
        bass.notes.append(pretty_midi.Note(80, root - 12, t, t + 2 * beat))
        for k in range(6):
            hit = t + k * beat / 2
            drums.notes.append(pretty_midi.Note(100, 42 if k % 2 else 36, hit, hit + 0.05))
    pm.instruments += [bass, drums, chords, lead]
    buffer = io.BytesIO()
    pm.write(buffer)
    return buffer.getvalue()


if __name__ == "__main__":
    make_fixtures()
    for name, data in seed_corpus().items():
        print(f"{name}: {len(data)} bytes")
