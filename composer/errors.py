"""Typed errors the composer raises for bad input; callers translate ``code`` for people."""

from __future__ import annotations


class ComposerError(Exception):
    """Base of every error the composer raises on purpose. ``code`` names the case."""

    code = "error"

    def __init__(self, message: str, code: str | None = None, **fields: str) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        #: The values the message names, for front ends that say it in another language.
        self.fields = fields


class MidiError(ComposerError):
    """A MIDI file that yields no usable melody.

    ``code`` is one of: ``not_midi``, ``corrupt``, ``too_large``, ``too_long``, ``no_notes``,
    ``drums_only``, ``unreadable`` (a path that is missing or not a regular file).
    """

    code = "corrupt"


class RequestError(ComposerError):
    """A control outside its bounds, or one the style cannot serve; ``code`` names it (``bad_temperature``,
    ``bad_bars``, ``bad_key``, ``unknown_metre``, ``unknown_mode``, ...)."""

    code = "bad_request"


class StyleError(ComposerError):
    """An unknown style, or a malformed style mix."""

    code = "unknown_style"


class RenderError(ComposerError):
    """Audio or score rendering failed (missing tool or soundfont, time-out, bad output)."""

    code = "render_failed"
