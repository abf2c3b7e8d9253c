"""The trained style models in ``models/<style>/``, each loaded once per process (thread-safe)."""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from composer.errors import StyleError
from composer.lstm import LstmModel
from composer.repetition import RepetitionModel
from composer.representation import Representation
from composer.sampler import DEFAULT_TOP_P, MAX_TOP_P, MIN_TOP_P, Mixture

#: Environment variable naming the models folder; ``models`` when unset.
MODELS_ENV = "COMPOSER_MODELS"
#: Mixtures kept ready (a mixture holds re-laid-out copies of its models' weights).
MIXTURE_CACHE_SIZE = 16


def default_models_dir() -> Path:
    return Path(os.environ.get(MODELS_ENV, "models"))


@dataclass(frozen=True)
class StyleInfo:
    """What ``models/<style>/config.json`` says about a style: its text, sound defaults and representation."""

    name: str
    description: str
    program: int
    tempo_bpm: float
    representation: Representation
    #: The short-term model mixed into the sampler's distribution (tuned on validation, off if absent).
    repetition: RepetitionModel = field(default_factory=RepetitionModel)
    #: The top-p a request that names none composes with.
    top_p: float = DEFAULT_TOP_P

    @property
    def time_signature(self) -> tuple[int, int]:
        """The metre most of the corpus is in."""
        return self.representation.metres[0] if self.representation.metres else (4, 4)

    @property
    def metres(self) -> tuple[tuple[int, int], ...]:
        return self.representation.metres

    @classmethod
    def from_config(cls, name: str, config: dict) -> StyleInfo:
        top_p = float(config.get("top_p", DEFAULT_TOP_P))
        if not MIN_TOP_P <= top_p <= MAX_TOP_P:
            raise ValueError(f"{name}: config.json's top_p {top_p:g} is outside {MIN_TOP_P:g}..{MAX_TOP_P:g}")
        return cls(name, str(config.get("description", name)), int(config.get("program", 0)),
                   float(config.get("tempo_bpm", 120)), Representation.from_config(config["representation"]),
                   RepetitionModel.from_config(config.get("repetition")),
                   top_p)


@dataclass(frozen=True)
class StyleModel:
    info: StyleInfo
    model: LstmModel


class ModelLibrary:
    """The styles in one models folder; models and mixtures are built on first use and kept."""

    def __init__(self, models_dir: Path | str | None = None) -> None:
        self.models_dir = Path(models_dir) if models_dir is not None else default_models_dir()
        self._lock = threading.Lock()
        self._models: dict[str, StyleModel] = {}
        self._mixtures: OrderedDict[tuple[tuple[str, float], ...], Mixture] = OrderedDict()

    def _folders(self) -> dict[str, Path]:
        if not self.models_dir.is_dir():
            return {}
        return {p.name: p for p in sorted(self.models_dir.iterdir())
                if (p / "config.json").is_file() and (p / "weights.npz").is_file()}

    def styles(self) -> list[StyleInfo]:
        """Every style with a trained model, by name."""
        return [StyleInfo.from_config(name, json.loads((folder / "config.json").read_text()))
                for name, folder in self._folders().items()]

    def get(self, name: str) -> StyleModel:
        """The style's model, loaded on first use; ``StyleError`` (``unknown_style``) if there is none."""
        with self._lock:
            if name not in self._models:
                folder = self._folders().get(name)
                if folder is None:
                    known = ", ".join(self._folders()) or f"none (no models in {self.models_dir})"
                    raise StyleError(f"unknown style {name!r}; styles: {known}", "unknown_style")
                info = StyleInfo.from_config(name, json.loads((folder / "config.json").read_text()))
                self._models[name] = StyleModel(info, LstmModel.load(folder))
            return self._models[name]

    def mixture(self, mix: dict[str, float]) -> Mixture:
        """The sampler's view of a style mix (name -> weight), kept for reuse."""
        key = tuple(mix.items())
        models = [self.get(name).model for name in mix]
        with self._lock:
            if key in self._mixtures:
                self._mixtures.move_to_end(key)
                return self._mixtures[key]
        mixture = Mixture(models, list(mix.values()))
        with self._lock:
            self._mixtures[key] = mixture
            while len(self._mixtures) > MIXTURE_CACHE_SIZE:
                self._mixtures.popitem(last=False)
        return mixture
