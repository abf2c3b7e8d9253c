"""How good a style model is: test NLL per step against the best smoothed n-gram on the same split.

``score_model`` writes the numbers into the model card (training calls it too);
``python -m composer evaluate`` recomputes them for every shipped style and prints the table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from composer.corpus import CorpusReport
from composer.dataset import PreparedData, batches, save_melodies, token_sequences
from composer.encoding import VOCAB_SIZE
from composer.lstm import LstmModel, log_softmax
from composer.melody import Melody
from composer.ngram import NGramModel

TEST_SPLIT_FILE = "test_split.npz"


def sequence_nll(model: LstmModel, melodies: list[Melody], batch_size: int = 64) -> float:
    """Mean negative log-likelihood per target token (nats) of the numpy model."""
    total, count = 0.0, 0
    for tokens, positions, targets, weights in batches(melodies, batch_size):
        logp = log_softmax(model.forward(tokens, positions))
        picked = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
        total -= float((picked * weights).sum())
        count += int(weights.sum())
    return total / max(count, 1)


def ngram_baseline(data: PreparedData) -> dict:
    """The best smoothed n-gram (order 3..6, discount, original or augmented training data) by
    validation NLL, and its test NLL."""
    split = data.split
    val_seqs, test_seqs = token_sequences(split.validation), token_sequences(split.test)
    best: dict | None = None
    best_model: NGramModel | None = None
    for name, melodies in (("original keys", split.train), ("augmented", data.augmented)):
        full = NGramModel(6, VOCAB_SIZE).fit(token_sequences(melodies))
        for order in (3, 4, 5, 6):
            for discount in (0.6, 0.75, 0.9):
                model = full.with_order(order, discount)
                val = model.nll(val_seqs)
                if best is None or val < best["validation_nll"]:
                    best = {"order": order, "discount": discount, "data": name, "validation_nll": val}
                    best_model = model
    assert best is not None and best_model is not None
    best["validation_nll"] = round(best["validation_nll"], 4)
    best["test_nll"] = best_model.nll(test_seqs)
    return best


def score_model(model_dir: Path, data: PreparedData, report: CorpusReport, source: str,
                training: dict) -> dict:
    """Score the model in ``model_dir`` on ``data``'s split; write card.json, README.md and the test split."""
    model = LstmModel.load(model_dir)
    meta = json.loads((model_dir / "config.json").read_text())
    split = data.split
    baseline = ngram_baseline(data)
    test_nll = sequence_nll(model, split.test)
    save_melodies(model_dir / TEST_SPLIT_FILE, split.test)
    card = {
        "style": meta["style"],
        "description": meta["description"],
        "source": source,
        "pieces": report.pieces,
        "files": report.files,
        "skipped": dict(report.skipped),
        "split_pieces": {"train": len(split.train), "validation": len(split.validation),
                         "test": len(split.test)},
        "tokens": sum(m.n_steps + 1 for m in split.train + split.validation + split.test),
        "train_tokens_per_epoch": sum(m.n_steps + 1 for m in data.augmented),
        "transpositions_per_piece": data.transpositions_per_piece,
        "keys_normalised": data.key_shifts is not None,
        "repeats_per_piece": len(data.augmented) // max(len(split.train), 1),
        "vocab_size": VOCAB_SIZE,
        "parameters": model.parameters,
        "size_bytes": (model_dir / "weights.npz").stat().st_size,
        **training,
        "validation_nll": round(sequence_nll(model, split.validation), 4),
        "test_nll": round(test_nll, 4),
        "ngram_test_nll": round(baseline.pop("test_nll"), 4),
        "ngram": baseline,
        "uniform_nll": round(float(np.log(VOCAB_SIZE)), 4),
    }
    (model_dir / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (model_dir / "README.md").write_text(model_readme(card))
    return card


def model_readme(card: dict) -> str:
    gain = 100 * (1 - card["test_nll"] / card["ngram_test_nll"])
    split = card["split_pieces"]
    return (
        f"# {card['style']} model\n\n"
        f"{card['description']}. Trained on {card['pieces']} melodies ({card['tokens']:,} steps) from "
        f"{card['source']}, split by piece {split['train']}/{split['validation']}/{split['test']} "
        f"(train/validation/test); {_augmentation(card)}.\n\n"
        f"{card['architecture']}; {card['parameters']:,} parameters ({card['size_bytes']:,} bytes); "
        f"{card['epochs']} epochs in {card['train_seconds']} s on {card['machine']}.\n\n"
        f"Test NLL {card['test_nll']} nats/step against {card['ngram_test_nll']} for the best smoothed "
        f"n-gram on the same split ({gain:.1f}% lower); uniform guessing would be {card['uniform_nll']}.\n\n"
        f"Reproduce: `{card['command']}`; recompute the scores: `python -m composer evaluate`.\n"
    )


def _augmentation(card: dict) -> str:
    if card.get("keys_normalised"):
        repeats = card["repeats_per_piece"]
        return ("every piece is moved to C major or A minor (by its estimated key) and each training piece "
                f"used {'once' if repeats == 1 else f'{repeats} times'} an epoch; the sampler moves each "
                "melody to a key drawn from the corpus's keys")
    k = card["transpositions_per_piece"]
    return (f"each training piece is repeated {max(k, 1)} time(s) in its own key and {k} time(s) "
            "transposed at random (up to 6 semitones)")


def nll_table(cards: list[dict]) -> str:
    header = ("style", "pieces", "params", "train s", "test NLL", "n-gram", "gain")
    rows = ["{:<12} {:>7} {:>8} {:>8} {:>9} {:>8} {:>6}".format(*header)]
    for c in cards:
        gain = 100 * (1 - c["test_nll"] / c["ngram_test_nll"])
        rows.append(f"{c['style']:<12} {c['pieces']:>7} {c['parameters']:>8} {c['train_seconds']:>8} "
                    f"{c['test_nll']:>9.4f} {c['ngram_test_nll']:>8.4f} {gain:>5.1f}%")
    return "\n".join(rows)


TRAINING_KEYS = ("architecture", "epochs", "train_seconds", "machine", "options", "command")


def evaluate_all(models_dir: Path, cache_dir: Path) -> list[dict]:
    """Recompute every built-in style's scores from its corpus and rewrite its card."""
    from composer.corpus import build_style_corpus
    from composer.dataset import prepare
    from composer.styles import BUILTIN_STYLES

    cards = []
    for card_path in sorted(models_dir.glob("*/card.json")):
        old = json.loads(card_path.read_text())
        style = old["style"]
        if style not in BUILTIN_STYLES:
            print(f"{style}: not a built-in style, card numbers shown as trained")
            cards.append(old)
            continue
        melodies, report = build_style_corpus(style, cache_dir)
        options = old["options"]
        data = prepare(melodies, options["target_tokens"], options["seed"],
                       options.get("normalise_keys", False))
        training = {k: old[k] for k in TRAINING_KEYS}
        cards.append(score_model(card_path.parent, data, report, old["source"], training))
    return cards


def quality_rows(models_dir: Path, count: int = 100, bars: int = 16) -> list[tuple[str, dict, dict]]:
    """Per style: MGEval-style feature overlaps of ``count`` generated melodies with the test split
    (cut to the same length), and the ceiling (two halves of the test split). A style trained with keys
    normalised has its test split in C major / A minor, so its melodies are compared there too."""
    from composer.compose import ComposeRequest, compose
    from composer.dataset import chunks, in_c, load_melodies
    from composer.features import feature_overlaps, overlap_ceiling
    from composer.model_store import ModelLibrary

    library = ModelLibrary(models_dir)
    rows = []
    for info in library.styles():
        test = load_melodies(models_dir / info.name / TEST_SPLIT_FILE)
        real = [c for m in test for c in chunks(m, bars * m.steps_per_bar)]
        generated = [compose(ComposeRequest(info.name, bars=bars, seed=seed), library).melody
                     for seed in range(count)]
        if info.key_shifts:
            generated = [in_c(m)[0] for m in generated]
        rows.append((info.name, feature_overlaps(generated, real), overlap_ceiling(real)))
    return rows


def quality_table(rows: list[tuple[str, dict, dict]]) -> str:
    from composer.features import FEATURES

    lines = ["overlap of generated with real test melodies (ceiling: two halves of the real set)",
             f"{'style':<12} " + " ".join(f"{f[:14]:>14}" for f in FEATURES) + f" {'mean':>11}"]
    for style, got, ceiling in rows:
        cells = [f"{got[f]:.2f}/{ceiling[f]:.2f}" for f in FEATURES]
        mean_got = sum(got[f] for f in FEATURES) / len(FEATURES)
        mean_ceiling = sum(ceiling[f] for f in FEATURES) / len(FEATURES)
        lines.append(f"{style:<12} " + " ".join(f"{c:>14}" for c in cells)
                     + f" {mean_got:.2f}/{mean_ceiling:.2f}")
    return "\n".join(lines)
