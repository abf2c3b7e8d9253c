"""How good a style model is: test NLL per step against the best smoothed n-gram on the same split.

``score_model`` writes the numbers into the model card (training calls it too);
``python -m composer evaluate`` recomputes them for every shipped style and prints the table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from composer.corpus import CorpusReport
from composer.dataset import PreparedData, example_groups, pad, save_melodies, token_sequences
from composer.lstm import LstmModel, log_softmax
from composer.melody import Melody
from composer.ngram import (
    NGramModel,
    ltm_stm_nll,
    ngram_pitch_cross_entropy_bits,
    pitch_cross_entropy_bits,
    tune_ltm_stm,
)
from composer.repetition import RepetitionModel, tune
from composer.representation import FIRST_PITCH_ID, Representation

TEST_SPLIT_FILE = "test_split.npz"
#: ``teacher_forced``'s output: per sequence, log-probabilities ``(T, V)``, targets ``(T,)``, steps per bar.
Forced = tuple[list[np.ndarray], list[np.ndarray], list[int]]


def teacher_forced(model: LstmModel, rep: Representation, melodies: list[Melody],
                   batch_size: int = 64) -> Forced:
    """Per scored sequence of the melodies: the numpy model's next-step log-probabilities ``(T, V)``, the
    targets ``(T,)`` (steps of weight 0, such as the END of a chunk cut from a longer piece, left out) and
    the steps per bar."""
    out_logp, out_targets, out_spb = [], [], []
    for group in example_groups(rep, melodies, batch_size):
        inputs, targets, weights = pad(group)
        logp = log_softmax(model.forward(inputs))
        for row, example in enumerate(group):
            keep = weights[row] > 0
            out_logp.append(logp[row][keep])
            out_targets.append(targets[row][keep].astype(np.int64))
            out_spb.append(example.steps_per_bar)
    return out_logp, out_targets, out_spb


def scores(forced: Forced, rep: Representation,
           repetition: RepetitionModel | None = None) -> tuple[float, float]:
    """From ``teacher_forced``'s output: the mean negative log-likelihood per target step (nats) of the
    model (mixed with ``repetition``, if given), and its pitch cross-entropy at note onsets (bits per
    note, Pearce 2005)."""
    logps, targets, spbs = forced
    if repetition is not None:
        logps = [repetition.mix_sequence(lp, y, spb) for lp, y, spb in zip(logps, targets, spbs, strict=True)]
    logp, target = np.concatenate(logps), np.concatenate(targets)
    nll = -float(logp[np.arange(len(target)), target].mean())
    return nll, pitch_cross_entropy_bits(logp, target, np.arange(FIRST_PITCH_ID, rep.vocab_size))


def sequence_nll(model: LstmModel, rep: Representation, melodies: list[Melody]) -> float:
    """Mean negative log-likelihood per target step (nats) of the numpy model alone."""
    return scores(teacher_forced(model, rep, melodies), rep)[0]


def ngram_baselines(data: PreparedData) -> dict:
    """The best smoothed n-gram (order 3..6 and discount by validation NLL) as the long-term model, alone
    and with a short-term model of the piece so far (IDyOM's LTM+STM, its combination tuned on
    validation): test NLL (nats per step) and pitch cross-entropy (bits per note) of each."""
    split, rep = data.split, data.rep
    val_seqs, test_seqs = token_sequences(rep, split.validation), token_sequences(rep, split.test)
    best: dict | None = None
    best_model: NGramModel | None = None
    sources = [("training split", split.train)]
    if data.transpositions_per_piece:
        sources.append(("augmented", data.augmented))
    for name, melodies in sources:
        full = NGramModel(6, rep.vocab_size).fit(token_sequences(rep, melodies))
        for order in (3, 4, 5, 6):
            for discount in (0.6, 0.75, 0.9):
                model = full.with_order(order, discount)
                val = model.nll(val_seqs)
                if best is None or val < best["validation_nll"]:
                    best = {"order": order, "discount": discount, "data": name, "validation_nll": val}
                    best_model = model
    assert best is not None and best_model is not None
    pitch_ids = np.arange(FIRST_PITCH_ID, rep.vocab_size)
    stm = tune_ltm_stm(best_model, val_seqs)
    stm_options = {k: v for k, v in stm.items() if k != "validation_nll"}
    return {
        "ngram": {**best, "validation_nll": round(best["validation_nll"], 4)},
        "ngram_test_nll": round(best_model.nll(test_seqs), 4),
        "ngram_pitch_bits": round(ngram_pitch_cross_entropy_bits(best_model, test_seqs, pitch_ids), 3),
        "ltm_stm": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in stm.items()},
        "ltm_stm_test_nll": round(ltm_stm_nll(best_model, test_seqs, **stm_options), 4),
        "ltm_stm_pitch_bits": round(ngram_pitch_cross_entropy_bits(best_model, test_seqs, pitch_ids,
                                                                   **stm_options), 3),
    }


def score_model(model_dir: Path, data: PreparedData, report: CorpusReport, source: str,
                training: dict) -> dict:
    """Score the model in ``model_dir`` on ``data``'s split; write card.json, README.md and the test split."""
    model = LstmModel.load(model_dir)
    meta = json.loads((model_dir / "config.json").read_text())
    split, rep = data.split, data.rep
    baselines = ngram_baselines(data)
    # The short-term repetition model, tuned on validation, ships in the config the sampler reads.
    validation = teacher_forced(model, rep, split.validation)  # each split stepped through the model once
    repetition, _ = tune(*validation)
    meta["repetition"] = repetition.to_config()
    (model_dir / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    test = teacher_forced(model, rep, split.test)
    test_nll, pitch_bits = scores(test, rep)
    with_repetition = scores(test, rep, repetition)
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
        "key_policy": rep.key_policy,
        "metres": {f"{n}/{d}": c for (n, d), c in zip(rep.metres, rep.metre_counts, strict=True)},
        "repeats_per_piece": len(data.augmented) // max(len(split.train), 1),
        "vocab_size": rep.vocab_size,
        "parameters": model.parameters,
        "size_bytes": (model_dir / "weights.npz").stat().st_size,
        **training,
        "validation_nll": round(scores(validation, rep)[0], 4),
        "test_nll": round(test_nll, 4),
        "pitch_bits": round(pitch_bits, 3),
        "repetition": repetition.to_config(),
        "test_nll_with_repetition": round(with_repetition[0], 4),
        "pitch_bits_with_repetition": round(with_repetition[1], 3),
        **baselines,
        "uniform_nll": round(float(np.log(rep.vocab_size)), 4),
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
    if card.get("key_policy") == "normalise":
        repeats = card["repeats_per_piece"]
        return ("every piece is moved to C major or A minor (by its estimated key) and each training piece "
                f"used {'once' if repeats == 1 else f'{repeats} times'} an epoch; the sampler moves each "
                "melody to a key drawn from the corpus's keys")
    k = card["transpositions_per_piece"]
    return (f"each training piece is repeated {max(k, 1)} time(s) in its own key and {k} time(s) "
            "transposed at random (up to 6 semitones)")


#: Pearce (2005, IDyOM) pitch cross-entropy, bits per note, on comparable corpora.
PUBLISHED_PITCH_BITS = {"classical": "2.347 (1.953 multi-feature), Bach chorales",
                        "folk": "2.106, Essen German children's songs",
                        "chinese": "2.681, Essen Chinese (Shanxi)"}


def nll_table(cards: list[dict]) -> str:
    """Test NLL (nats per step) and pitch cross-entropy at note onsets (bits per note) of the LSTM alone,
    the LSTM with its repetition model (what the sampler plays), the n-gram and the n-gram with its
    short-term model (LTM+STM), beside Pearce's published figures."""
    header = ("style", "pieces", "train s", "LSTM", "+rep.", "n-gram", "LTM+STM", "| bits:", "LSTM", "+rep.",
              "n-gram", "LTM+STM", "Pearce 2005")
    rows = ["{:<12} {:>6} {:>7} {:>7} {:>7} {:>7} {:>8} {:>6} {:>6} {:>6} {:>7} {:>8}  {}".format(*header)]
    for c in cards:
        rows.append(f"{c['style']:<12} {c['pieces']:>6} {c['train_seconds']:>7} {c['test_nll']:>7.4f} "
                    f"{c.get('test_nll_with_repetition', float('nan')):>7.4f} {c['ngram_test_nll']:>7.4f} "
                    f"{c.get('ltm_stm_test_nll', float('nan')):>8.4f} {'|':>6} "
                    f"{c.get('pitch_bits', 0):>6.2f} "
                    f"{c.get('pitch_bits_with_repetition', 0):>6.2f} {c.get('ngram_pitch_bits', 0):>7.2f} "
                    f"{c.get('ltm_stm_pitch_bits', 0):>8.2f}  {PUBLISHED_PITCH_BITS.get(c['style'], '')}")
    return "\n".join(rows)


TRAINING_KEYS = ("architecture", "epochs", "train_seconds", "machine", "recipe", "command")


def evaluate_all(models_dir: Path, cache_dir: Path, styles: list[str] | None = None) -> list[dict]:
    """Recompute every built-in style's (or ``styles``') scores from its corpus and rewrite its card."""
    from composer.corpus import build_style_corpus
    from composer.dataset import prepare
    from composer.styles import BUILTIN_STYLES

    cards = []
    for card_path in sorted(models_dir.glob("*/card.json")):
        if styles and card_path.parent.name not in styles:
            continue
        old = json.loads(card_path.read_text())
        style = old["style"]
        if style not in BUILTIN_STYLES:
            print(f"{style}: not a built-in style, card numbers shown as trained")
            cards.append(old)
            continue
        melodies, report = build_style_corpus(style, cache_dir)
        recipe = old["recipe"]
        # Scored as the model sees melodies: its own saved representation (fold policy, metres, keys), not
        # one made afresh from today's defaults.
        config = json.loads((card_path.parent / "config.json").read_text())
        data = prepare(melodies, recipe["target_tokens"], recipe["seed"],
                       Representation.from_config(config["representation"]))
        training = {k: old[k] for k in TRAINING_KEYS}
        card = score_model(card_path.parent, data, report, old["source"], training)
        # Notes written into a card after training stay: a ``<key>_source`` and the ``<key>`` it explains.
        notes = {k: v for k, v in old.items()
                 if k not in card and (k.endswith("_source") or f"{k}_source" in old)}
        if notes:
            card = {**card, **notes}
            card_path.write_text(json.dumps(card, indent=2) + "\n")
        cards.append(card)
    return cards


def quality_rows(models_dir: Path, count: int = 100, bars: int = 16,
                 styles: list[str] | None = None) -> list[tuple[str, dict, dict]]:
    """Per style: MGEval-style feature overlaps of ``count`` generated melodies with the test split
    (cut to the same length), and the ceiling (two halves of the test split). A style trained with keys
    normalised has its test split in C major / A minor, so its melodies are compared there too."""
    from composer.compose import ComposeRequest, compose
    from composer.dataset import chunks, load_melodies
    from composer.features import feature_overlaps, overlap_ceiling
    from composer.model_store import ModelLibrary

    library = ModelLibrary(models_dir)
    rows = []
    for info in library.styles():
        if styles and info.name not in styles:
            continue
        test = load_melodies(models_dir / info.name / TEST_SPLIT_FILE)
        real = [c for m in test for c in chunks(m, bars * m.steps_per_bar)]
        generated = [compose(ComposeRequest(info.name, bars=bars, seed=seed), library).melody
                     for seed in range(count)]
        rep = info.representation
        if rep.key_policy == "normalise":
            generated = [rep.normalise(m)[0] for m in generated]
            real = [rep.normalise(m)[0] for m in real]
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
