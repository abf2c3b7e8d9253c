"""General MIDI instruments by name or program number."""

from __future__ import annotations

import re

from pretty_midi.constants import INSTRUMENT_MAP

from composer.errors import ComposerError

#: Everyday names for the General MIDI programs people ask for most.
ALIASES: dict[str, int] = {
    "piano": 0, "harpsichord": 6, "celesta": 8, "musicbox": 10, "vibraphone": 11, "marimba": 12,
    "organ": 19, "accordion": 21, "harmonica": 22, "guitar": 24, "bass": 32, "violin": 40, "viola": 41,
    "cello": 42, "harp": 46, "strings": 48, "choir": 52, "voice": 53, "trumpet": 56, "trombone": 57,
    "horn": 60, "saxophone": 65, "sax": 65, "oboe": 68, "bassoon": 70, "clarinet": 71, "piccolo": 72,
    "flute": 73, "recorder": 74, "panflute": 75, "whistle": 78, "ocarina": 79, "sitar": 104,
    "banjo": 105, "shamisen": 106, "koto": 107, "bagpipe": 109, "bagpipes": 109, "fiddle": 110,
}


class InstrumentError(ComposerError):
    """An instrument name or program number General MIDI does not have."""

    code = "bad_instrument"


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_NAME = {_key(name): program for program, name in enumerate(INSTRUMENT_MAP)}


def program_for(value: str | int) -> int:
    """The General MIDI program (0..127) for a name (``"violin"``, ``"Church Organ"``, a unique
    part of a name) or a program number 0..127."""
    if isinstance(value, bool):
        raise InstrumentError(f"not an instrument: {value!r}")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int):
        if 0 <= value <= 127:
            return value
        raise InstrumentError(f"program number {value} is outside 0..127")
    key = _key(str(value))
    if not key:
        raise InstrumentError("empty instrument name")
    if key in _BY_NAME:
        return _BY_NAME[key]
    if key in ALIASES:
        return ALIASES[key]
    matches = sorted({program for name, program in _BY_NAME.items() if key in name})
    if len(matches) == 1:
        return matches[0]
    if matches:
        options = ", ".join(INSTRUMENT_MAP[p] for p in matches[:4]) + (", ..." if len(matches) > 4 else "")
        raise InstrumentError(f"instrument {value!r} is ambiguous: {options}")
    raise InstrumentError(f"unknown instrument {value!r}: try a General MIDI name like 'violin', or 0..127")


def instrument_name(program: int) -> str:
    """The General MIDI name of ``program`` (0..127)."""
    if not 0 <= program <= 127:
        raise InstrumentError(f"program number {program} is outside 0..127")
    return INSTRUMENT_MAP[program]
