"""A user's remembered settings and the checks on values people type."""

from __future__ import annotations

from dataclasses import dataclass

from composer.compose import metre_name
from composer.compose import parse_metre as composer_metre
from composer.errors import ComposerError, StyleError
from composer.keys import key_name
from composer.keys import parse_key as composer_key
from composer.style_mix import parse_mix

TEMPERATURE_RANGE = (0.1, 2.0)
BARS_RANGE = (4, 64)
TEMPO_RANGE = (40, 240)
LANGUAGES = ("en", "ru")


@dataclass(frozen=True)
class Settings:
    """What a user chose; ``None`` means "the default" (the bot's style, the style's tempo and instrument,
    the language of the user's Telegram app)."""

    style: str | None = None
    temperature: float = 1.0
    bars: int = 16
    tempo: int | None = None
    instrument: str | None = None
    language: str | None = None
    #: Chords and a bass line under the melody (``make_piece(accompaniment=...)``).
    accompaniment: bool = True
    #: ``"D minor"``; None: the composer chooses (the seed's key, else one of the style's).
    key: str | None = None
    #: ``"6/8"``; None: the composer chooses (the seed's metre, else one of the style's).
    metre: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "accompaniment", bool(self.accompaniment))  # SQLite keeps 1 or 0


class InvalidValue(Exception):
    """A value outside what the setting allows; ``key`` names the message, ``fields`` fill it in."""

    def __init__(self, key: str, **fields: object) -> None:
        super().__init__(key)
        self.key = key
        self.fields = fields


def _number(text: str, key: str, low: float, high: float) -> float:
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError:
        raise InvalidValue(key, value=text, low=low, high=high) from None
    if not low <= value <= high:
        raise InvalidValue(key, value=text, low=low, high=high)
    return value


def _whole(text: str, key: str, low: int, high: int) -> int:
    value = _number(text, key, low, high)
    if value != int(value):
        raise InvalidValue(key, value=text, low=low, high=high)
    return int(value)


def parse_temperature(text: str) -> float:
    """``0.8`` or ``0,8`` within ``TEMPERATURE_RANGE``, rounded to two decimals."""
    return round(_number(text, "bad_temperature", *TEMPERATURE_RANGE), 2)


def parse_bars(text: str) -> int:
    return _whole(text, "bad_bars", *BARS_RANGE)


def parse_tempo(text: str) -> int:
    return _whole(text, "bad_tempo", *TEMPO_RANGE)


def parse_language(text: str) -> str:
    value = text.strip().lower()
    if value not in LANGUAGES:
        raise InvalidValue("bad_language", value=text)
    return value


ON_WORDS = ("on", "yes", "1", "true", "вкл", "да")
OFF_WORDS = ("off", "no", "0", "false", "выкл", "нет")


def parse_accompaniment(text: str) -> bool:
    """``on`` or ``off`` (also yes/no, 1/0, вкл/выкл, да/нет)."""
    value = text.strip().lower()
    if value in ON_WORDS:
        return True
    if value in OFF_WORDS:
        return False
    raise InvalidValue("bad_accompaniment", value=text)


def parse_key(text: str) -> str:
    """A key the composer reads (``D minor``, ``f#m``, ``Bb``, ``ре минор`` spelt ``D минор``, ``A dorian``,
    ``G mix``), in its spelling: ``"D minor"``, ``"A dorian"``; whether the style has the mode is checked
    when composing."""
    try:
        tonic, mode = composer_key(text)
    except ComposerError:
        raise InvalidValue("bad_key", value=text) from None
    return key_name(tonic, mode)


def parse_metre(text: str) -> str:
    """A metre such as ``6/8``; whether the style has it is checked when composing."""
    try:
        return metre_name(composer_metre(text))
    except ComposerError:
        raise InvalidValue("bad_metre", value=text) from None


def parse_style(text: str, known: list[str]) -> str:
    """A style from ``known`` or a mix of them (``classical+celtic``, ``classical:0.7,celtic:0.3``), in the
    composer's spelling: names joined by ``+`` when weights are equal, else ``name:weight`` pairs."""
    try:
        mix = parse_mix(text)
    except StyleError:
        raise InvalidValue("unknown_style", value=text.strip()) from None
    if any(name not in known for name in mix):
        raise InvalidValue("unknown_style", value=text.strip())
    if len(set(mix.values())) == 1:
        return "+".join(mix)
    return ",".join(f"{name}:{weight:.3g}" for name, weight in mix.items())
