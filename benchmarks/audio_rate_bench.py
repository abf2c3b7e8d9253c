"""What synthesising the voice message at 24 kHz instead of 48 kHz would save, and what it would cost.

    python benchmarks/audio_rate_bench.py [--styles celtic,classical] [--seed 1]

Issue 11 asks for at most 0.3 s of CPU per piece "at unchanged quality"; FluidSynth's synthesis alone
takes about 0.35 s of it at 48 kHz. Half the rate halves the synthesis, and Opus codes 24 kHz input
as it is, but the sound above 12 kHz goes. This measures both sides on pieces the bot makes (shipped
models, with the accompaniment): each piece is synthesised at both rates by ``composer.audio``'s
``BoundedFluidSynth`` (the bot's fallback path: the ``fluidsynth`` command with the bot's settings),
mixed to mono, peak-normalised, encoded by ``opusenc`` as the bot encodes (48 kbit/s, its complexity and
packet length) and decoded by ``opusdec`` at 48 kHz.
Reported per rate: the synthesis's CPU seconds (the ``fluidsynth`` command's, less what the same
command takes for a single short note: starting it and loading the soundfont); the share of the
decoded sound's energy above 12 kHz; and the log-spectral distance (dB, 4096-point frames) of the
decoded sound to the 48 kHz synthesis itself, below 12 kHz and up to 20 kHz: the codec's own error at
48 kHz is the yardstick.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from composer.audio import DEFAULT_SOUNDFONT, OPUS_COMPLEXITY, OPUS_FRAME_MS, BoundedFluidSynth
from composer.compose import ComposeRequest
from composer.model_store import ModelLibrary
from composer.piece import make_piece

RATES = (48_000, 24_000)
FRAME = 4096


def synth_cpu(midi: Path, rate: int, wav: Path) -> float:
    """CPU seconds of ``fluidsynth`` rendering ``midi`` to ``wav`` at ``rate`` with the bot's settings."""
    before = children_cpu()
    BoundedFluidSynth(DEFAULT_SOUNDFONT, rate, timeout=60.0).midi_to_audio(str(midi), str(wav))
    return children_cpu() - before


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def power_spectra(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    window = np.hanning(FRAME)
    frames = np.array([x[i:i + FRAME] * window for i in range(0, len(x) - FRAME, FRAME // 2)])
    return np.abs(np.fft.rfft(frames, axis=1)) ** 2, np.fft.rfftfreq(FRAME, 1 / rate)


def spectral_distance(reference: np.ndarray, other: np.ndarray, band: np.ndarray) -> float:
    n = min(len(reference), len(other))
    a = 10 * np.log10(reference[:n][:, band] + 1e-9)
    b = 10 * np.log10(other[:n][:, band] + 1e-9)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--styles", default="celtic,classical")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    library = ModelLibrary(args.models)
    print(f"{'style':<12} {'rate':>6} {'synth CPU s':>11} {'above 12 kHz':>13} {'LSD <12 kHz':>12} "
          f"{'LSD <20 kHz':>12} {'OGG bytes':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for style in [s for s in args.styles.split(",") if s]:
            piece = make_piece(ComposeRequest(style, bars=16, seed=args.seed), library)
            midi = folder / f"{style}.mid"
            midi.write_bytes(piece.midi)
            note = pretty_midi.PrettyMIDI()
            note.instruments.append(pretty_midi.Instrument(0))
            note.instruments[0].notes.append(pretty_midi.Note(velocity=80, pitch=60, start=0.0, end=0.1))
            note.write(str(folder / "note.mid"))
            reference = None
            for rate in RATES:
                stem = f"{style}-{rate}"
                wav, mono, ogg, back = (folder / f"{stem}{n}" for n in ("s.wav", "m.wav", ".ogg", "d.wav"))
                fixed = min(synth_cpu(folder / "note.mid", rate, wav) for _ in range(3))
                cpu = synth_cpu(midi, rate, wav) - fixed
                x, _ = soundfile.read(wav)
                x = x.mean(axis=1)
                x *= 0.89 / max(float(np.abs(x).max()), 1e-9)
                soundfile.write(mono, x, rate, subtype="PCM_16")
                subprocess.run(["opusenc", "--quiet", "--bitrate", "48", "--comp", str(OPUS_COMPLEXITY),
                                "--framesize", str(OPUS_FRAME_MS), str(mono), str(ogg)], check=True)
                subprocess.run(["opusdec", "--quiet", "--rate", "48000", str(ogg), str(back)], check=True)
                decoded, _ = soundfile.read(back)
                if reference is None:
                    reference = power_spectra(x, rate)[0]
                spectra, freqs = power_spectra(decoded, 48_000)
                high = spectra[:, freqs > 12_000].sum() / spectra.sum()
                low_band = (freqs > 50) & (freqs < 12_000)
                full_band = (freqs > 50) & (freqs < 20_000)
                print(f"{style:<12} {rate:>6} {cpu:>11.3f} {10 * np.log10(high + 1e-12):>10.1f} dB "
                      f"{spectral_distance(reference, spectra, low_band):>9.2f} dB "
                      f"{spectral_distance(reference, spectra, full_band):>9.2f} dB {ogg.stat().st_size:>10}")


if __name__ == "__main__":
    main()
