"""Sampler speed: the seed document's Keras predict loop against the stateful numpy sampler.

    python benchmarks/sampler_bench.py [--models DIR] [--style NAME] [--runs N] [--seed-notes N]
                                       [--baseline REV]

Times, in one run and after the models are loaded: one 16-bar melody (median of ``--runs``
compositions), best-of-8, and the seed document's loop (3 x LSTM(256) over a 100-step one-hot window,
``model.predict`` once per note, random weights), timed for ``--seed-notes`` notes and extrapolated
to the same number of steps. For a like-for-like view it also steps the seed's very architecture
(3 x LSTM(256), one-hot input) with the numpy sampler.

``--baseline REV`` also times the ``composer`` package of git revision ``REV`` on the same requests,
the two taking turns in this one process, so that a busy machine slows both alike (an A/B).
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

from composer.compose import ComposeRequest, compose
from composer.lstm import INPUTS, LstmModel, ModelConfig
from composer.model_store import ModelLibrary, default_models_dir
from composer.representation import Representation
from composer.sampler import Mixture, sample

REP = Representation()
VOCAB_SIZE = REP.vocab_size

WINDOW = 100
SEED_UNITS, SEED_LAYERS = 256, 3


def interleaved_ms(fns: dict[str, Callable[[int], object]], runs: int) -> dict[str, tuple[float, float]]:
    """Median wall-clock and process CPU milliseconds of each ``fn(seed)`` over seeds ``1..runs``; the
    functions take turns, in alternating order, so that other load falls on each alike."""
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in fns}
    for seed in range(1, runs + 1):
        for name in list(fns)[:: 1 if seed % 2 else -1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            fns[name](seed)
            times[name][0].append(time.perf_counter() - start)
            times[name][1].append(time.process_time() - start_cpu)
    return {name: (1000 * statistics.median(wall), 1000 * statistics.median(cpu))
            for name, (wall, cpu) in times.items()}


def median_ms(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall-clock and process CPU milliseconds of ``fn()``."""
    return interleaved_ms({"": lambda _: fn()}, runs)[""]


def composer_at(revision: str) -> ModuleType:
    """The ``composer.compose`` module of git revision ``revision``, imported beside this checkout's: the
    revision's modules are in ``sys.modules`` only while it loads (the compose path imports nothing later)."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "archive", revision, "composer"], cwd=root, check=True,
                             capture_output=True).stdout

    def loaded() -> list[str]:
        return [name for name in sys.modules if name.split(".")[0] == "composer"]

    ours = {name: sys.modules.pop(name) for name in loaded()}
    with tempfile.TemporaryDirectory(prefix="sampler_bench_") as folder:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
        sys.path.insert(0, folder)
        try:
            return importlib.import_module("composer.compose")
        finally:
            sys.path.remove(folder)
            for name in loaded():
                del sys.modules[name]
            sys.modules.update(ours)


def seed_loop_ms_per_note(notes: int) -> float:
    """Median ms per note of the seed document's loop: re-read a 100-note window per ``predict``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    model = keras.Sequential([
        keras.Input((WINDOW, VOCAB_SIZE)),
        keras.layers.LSTM(SEED_UNITS, return_sequences=True),
        keras.layers.LSTM(SEED_UNITS, return_sequences=True),
        keras.layers.LSTM(SEED_UNITS),
        keras.layers.Dense(VOCAB_SIZE, activation="softmax"),
    ])
    rng = np.random.default_rng(0)
    window = np.eye(VOCAB_SIZE, dtype=np.float32)[rng.integers(0, VOCAB_SIZE, WINDOW)]
    for _ in range(3):  # warm-up: graph tracing
        model.predict(window[None], verbose=0)
    times = []
    for _ in range(notes):
        start = time.perf_counter()
        probs = model.predict(window[None], verbose=0)[0].astype(np.float64)
        note = rng.choice(VOCAB_SIZE, p=probs / probs.sum())
        window = np.concatenate([window[1:], np.eye(VOCAB_SIZE, dtype=np.float32)[note][None]])
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def seed_architecture_in_numpy() -> LstmModel:
    """The seed's 3 x LSTM(256) with one-hot input, random weights, as the numpy sampler runs it."""
    rng = np.random.default_rng(0)
    u = SEED_UNITS
    config = ModelConfig.for_representation(REP, token_embedding=REP.input_vocab_size, position_embedding=1,
                                            bars_left_embedding=1, control_embedding=1, units=u,
                                            layers=SEED_LAYERS)
    weights = {
        f"{name}_embedding": np.zeros((size, width), np.float32)  # the seed has no other inputs
        for name, size, width in zip(INPUTS, config.input_sizes(), config.embedding_widths(), strict=True)
    }
    weights["token_embedding"] = np.eye(REP.input_vocab_size, dtype=np.float32)  # one-hot input
    weights["dense_kernel"] = rng.normal(0, 0.1, (u, VOCAB_SIZE))
    weights["dense_bias"] = np.zeros(VOCAB_SIZE)
    for layer in range(SEED_LAYERS):
        n_in = sum(config.embedding_widths()) if layer == 0 else u
        weights[f"lstm{layer}_kernel"] = rng.normal(0, 0.1, (n_in, 4 * u))
        weights[f"lstm{layer}_recurrent"] = rng.normal(0, 0.1, (u, 4 * u))
        weights[f"lstm{layer}_bias"] = np.zeros(4 * u)
    return LstmModel(config, {k: np.asarray(v, np.float32) for k, v in weights.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=default_models_dir())
    parser.add_argument("--style", default="classical")
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--runs", type=int, default=40, help="compositions per timing (median)")
    parser.add_argument("--seed-notes", type=int, default=30, help="predict calls to time the seed loop")
    parser.add_argument("--baseline", metavar="REV", help="also time git revision REV's composer, in turns")
    args = parser.parse_args()

    library = ModelLibrary(args.models)
    info = library.get(args.style).info
    library.mixture({args.style: 1.0})  # load before timing
    metre = f"{info.time_signature[0]}/{info.time_signature[1]}"
    steps = args.bars * 16 * info.time_signature[0] // info.time_signature[1]
    config = library.get(args.style).model.config
    composers = {"this sampler": (importlib.import_module("composer.compose"), library)}
    if args.baseline:
        baseline = composer_at(args.baseline)
        composers[f"baseline {args.baseline}"] = (baseline, baseline.ModelLibrary(args.models))

    def timings(candidates: int, runs: int) -> dict[str, tuple[float, float]]:
        def composing(module: ModuleType, models: ModelLibrary) -> Callable[[int], object]:
            return lambda seed: module.compose(module.ComposeRequest(
                args.style, bars=args.bars, seed=seed, candidates=candidates, metre=metre), models)

        return interleaved_ms({name: composing(*pair) for name, pair in composers.items()}, runs)

    timings(1, 1)  # warm-up
    singles, best8s = timings(1, args.runs), timings(8, max(args.runs // 2, 5))
    single, best8 = singles["this sampler"], best8s["this sampler"]
    notes = statistics.median(
        len(compose(ComposeRequest(args.style, bars=args.bars, seed=s, candidates=1, metre=metre),
                    library).melody.notes())
        for s in range(10)
    )
    same_arch = Mixture([seed_architecture_in_numpy()], [1.0])
    same_arch = median_ms(lambda: sample(same_arch, REP, steps=steps, steps_per_bar=16, candidates=1,
                                         rng=np.random.default_rng(0), controls=[0], top_p=0.95),
                          max(args.runs // 2, 5))
    per_note = seed_loop_ms_per_note(args.seed_notes)
    seed_total = per_note * steps

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} (1 min) while timing")
    print(f"model: {args.models / args.style} ({config.layers} x LSTM({config.units})); "
          f"{args.bars} bars = {steps} steps ({info.time_signature[0]}/{info.time_signature[1]}), "
          f"median {notes:g} notes")
    print(f"{'':44}{'ms/melody':>10}{'CPU ms':>8}{'steps/s':>9}{'notes/s':>9}")
    rows = [row for name in composers for row in [(f"{name}, 1 candidate (compose)", *singles[name]),
                                                  (f"{name}, best of 8 (compose)", *best8s[name])]]
    rows += [
        (f"this sampler, seed's 3 x LSTM({SEED_UNITS}) arch", *same_arch),
        (f"seed's predict loop ({per_note:.1f} ms/note x {steps})", seed_total, float("nan")),
    ]
    for label, ms, cpu in rows:
        print(f"{label:44}{ms:>10.1f}{cpu:>8.1f}{1000 * steps / ms:>9.0f}{1000 * notes / ms:>9.0f}")
    print(f"seed loop: {args.seed_notes} predict calls timed, median per note extrapolated to {steps} steps; "
          "CPU ms is this process's CPU time, less sensitive than wall time to other load")
    print(f"speed-up over the seed loop: {seed_total / single[0]:.0f}x (shipped model, 1 candidate), "
          f"{seed_total / same_arch[0]:.0f}x (same 3 x LSTM({SEED_UNITS}) architecture)")
    if args.baseline:
        base = f"baseline {args.baseline}"
        print(f"this sampler / {base}: " + "; ".join(
            f"{label} {ours[0] / theirs[0]:.2f} wall, {ours[1] / theirs[1]:.2f} CPU"
            for label, ours, theirs in [("1 candidate", single, singles[base]),
                                        ("best of 8", best8, best8s[base])]))
    verdicts = [("1 melody <= 35 ms", single[0] <= 35), ("best of 8 <= 100 ms", best8[0] <= 100),
                (">= 200x faster", seed_total / single[0] >= 200)]
    print("targets: " + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in verdicts))


if __name__ == "__main__":
    main()
