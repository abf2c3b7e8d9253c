"""Style names and mixes: ``classical``, ``classical+celtic``, ``classical:0.7,celtic:0.3``."""

from __future__ import annotations

import math
import re

from composer.errors import StyleError

MAX_MIX_STYLES = 5
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


def parse_mix(text: str) -> dict[str, float]:
    """Style weights summing to 1, in the order given; ``StyleError`` (code ``bad_mix``) if malformed."""
    spec = text.strip().lower()
    plus, comma = "+" in spec, "," in spec or ":" in spec
    if plus and comma:
        raise StyleError(f"mix styles with '+' or with 'name:weight,...', not both: {text!r}", "bad_mix")
    weights: dict[str, float] = {}
    for part in spec.split("+" if plus else ","):
        name, _, weight_text = part.strip().partition(":")
        name = name.strip()
        if not _NAME.fullmatch(name):
            raise StyleError(f"not a style name: {name or text!r}", "bad_mix")
        if name in weights:
            raise StyleError(f"style {name!r} appears twice in {text!r}", "bad_mix")
        try:
            weight = float(weight_text) if weight_text.strip() else 1.0
        except ValueError:
            raise StyleError(f"weight of {name!r} is not a number: {weight_text!r}", "bad_mix") from None
        if not (math.isfinite(weight) and weight > 0):
            raise StyleError(f"weight of {name!r} must be above 0, not {weight_text.strip()}", "bad_mix")
        weights[name] = weight
    if len(weights) > MAX_MIX_STYLES:
        raise StyleError(f"at most {MAX_MIX_STYLES} styles in a mix", "bad_mix")
    total = sum(weights.values())
    return {name: weight / total for name, weight in weights.items()}


def mix_label(mix: dict[str, float]) -> str:
    """``classical`` or ``classical 70% + celtic 30%``."""
    if len(mix) == 1:
        return next(iter(mix))
    return " + ".join(f"{name} {round(100 * weight)}%" for name, weight in mix.items())
