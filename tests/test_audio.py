"""MIDI to OGG/Opus: checked from the bytes themselves (Ogg pages, Opus header, decoded samples)."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile

from composer.audio import (
    BITRATE_KBPS,
    MAX_VOICE_BYTES,
    SAMPLE_RATE,
    SUBPROCESS_ENV,
    bitrate_kbps,
    render_ogg,
)
from composer.errors import RenderError
from composer.melody import HOLD, REST, Melody
from composer.midi_writer import melody_to_midi


def sixteen_bars() -> Melody:
    """A 16-bar tune in 4/4 at 120 bpm (32 s) with quavers, held notes and rests; the last note is long."""
    bar = [60, HOLD, 62, HOLD, 64, HOLD, HOLD, HOLD, 67, HOLD, REST, HOLD, 65, 64, 62, HOLD]
    last = [60, *[HOLD] * 15]
    return Melody(tuple(bar * 15 + last), tempo_bpm=120.0, program=0, key="C major")


@pytest.fixture(scope="module")
def midi() -> bytes:
    return melody_to_midi(sixteen_bars())


@pytest.fixture(scope="module")
def ogg(midi: bytes) -> bytes:
    return render_ogg(midi)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary-files folder of this test's own, to see that rendering leaves nothing in it."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_is_ogg_opus_at_48k_mono(ogg: bytes) -> None:
    assert ogg[:4] == b"OggS"
    assert ogg[28:36] == b"OpusHead"  # the first packet of the first Ogg page: the Opus ID header
    info = soundfile.info(io.BytesIO(ogg))
    assert (info.format, info.subtype) == ("OGG", "OPUS")
    assert (info.samplerate, info.channels) == (SAMPLE_RATE, 1)


def test_length_matches_the_midi(ogg: bytes, midi: bytes) -> None:
    midi_seconds = mido.MidiFile(file=io.BytesIO(midi)).length
    assert midi_seconds == pytest.approx(32.0, abs=0.01)
    audio, rate = soundfile.read(io.BytesIO(ogg), dtype="float32")
    assert abs(len(audio) / rate - midi_seconds) < 1.0


def test_is_loud_not_clipped_and_fades_out(ogg: bytes) -> None:
    audio, rate = soundfile.read(io.BytesIO(ogg), dtype="float32")
    rms = float(np.sqrt(np.mean(audio**2)))
    assert rms > 0.05  # about -26 dBFS or louder: clearly audible, not silence
    assert np.abs(audio).max() < 1.0
    second_rms = np.sqrt(np.mean(audio[: len(audio) // rate * rate].reshape(-1, rate) ** 2, axis=1))
    assert (second_rms > 0.01).all(), "a second of the tune is silent"
    assert np.abs(audio[-rate // 50 :]).max() < 0.02  # the last 20 ms are faded out


def test_bitrate_suits_a_voice_message(ogg: bytes) -> None:
    assert 40_000 < len(ogg) < 400_000  # 32 s at about 48 kbit/s


def test_packets_are_of_60_ms(ogg: bytes) -> None:
    """Three 20 ms frames a packet: the same frames as 20 ms packets, less of opusenc's CPU."""
    packets, at = 0, 0
    while at < len(ogg):  # Ogg pages: 27-byte header, segment table, segments
        assert ogg[at : at + 4] == b"OggS"
        lacing = ogg[at + 27 : at + 27 + ogg[at + 26]]
        packets += sum(1 for size in lacing if size < 255)  # a segment under 255 bytes ends a packet
        at += 27 + len(lacing) + sum(lacing)
    seconds = soundfile.info(io.BytesIO(ogg)).duration
    assert packets - 2 == pytest.approx(seconds / 0.060, abs=2)  # less the two header packets


def test_soundfont_from_argument_env_or_default(midi: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUNDFONT", "/nonexistent/from-env.sf2")
    with pytest.raises(RenderError, match=r"from-env\.sf2") as caught:
        render_ogg(midi)
    assert caught.value.code == "missing_soundfont"
    assert "apt-get install fluidsynth fluid-soundfont-gm" in str(caught.value)
    with pytest.raises(RenderError, match=r"from-argument\.sf2"):
        render_ogg(midi, soundfont=Path("/nonexistent/from-argument.sf2"))


def test_a_file_that_is_not_a_soundfont_is_refused(midi: bytes, tmp_path: Path) -> None:
    fake = tmp_path / "fake.sf2"
    fake.write_bytes(b"RIFF\0\0\0\0WAVEfmt ")
    with pytest.raises(RenderError, match="not a SoundFont") as caught:
        render_ogg(midi, soundfont=fake)
    assert caught.value.code == "missing_soundfont"


def test_missing_fluidsynth_names_the_package(
    midi: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RenderError, match="apt-get install fluidsynth fluid-soundfont-gm") as caught:
        render_ogg(midi)
    assert caught.value.code == "missing_tool"


@pytest.fixture
def subprocess_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Render with a ``fluidsynth`` process per piece, the fallback when libfluidsynth is missing."""
    monkeypatch.setenv(SUBPROCESS_ENV, "1")


def test_a_hung_renderer_is_killed_and_leaves_no_files(
    midi: bytes, tmp_path: Path, private_tmp: Path, monkeypatch: pytest.MonkeyPatch, subprocess_path: None
) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    hung = tools / "fluidsynth"
    hung.write_text("#!/bin/sh\nexec sleep 30\n")
    hung.chmod(0o755)
    (tools / "opusenc").symlink_to(shutil.which("opusenc") or "/usr/bin/opusenc")
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}/bin")
    started = time.monotonic()
    with pytest.raises(RenderError) as caught:
        render_ogg(midi, timeout=0.5)
    assert caught.value.code == "timeout"
    assert time.monotonic() - started < 5.0
    assert list(private_tmp.iterdir()) == []


def test_temporary_files_are_removed_after_success(midi: bytes, private_tmp: Path) -> None:
    short = melody_to_midi(Melody((72, HOLD, HOLD, HOLD, 74, HOLD, HOLD, HOLD), tempo_bpm=100.0))
    audio, rate = soundfile.read(io.BytesIO(render_ogg(short)))
    assert abs(len(audio) / rate - mido.MidiFile(file=io.BytesIO(short)).length) < 1.0
    assert list(private_tmp.iterdir()) == []


def test_a_midi_without_notes_is_reported_silent(private_tmp: Path) -> None:
    with pytest.raises(RenderError) as caught:
        render_ogg(melody_to_midi(Melody((REST, HOLD, HOLD, HOLD))))
    assert caught.value.code == "silent"
    assert list(private_tmp.iterdir()) == []


def test_overlong_midi_is_refused_before_rendering(private_tmp: Path) -> None:
    one_note = Melody((60, *[HOLD] * 2_799), tempo_bpm=60.0)  # 2,800 steps of 0.25 s: 700 s
    with pytest.raises(RenderError) as caught:
        render_ogg(melody_to_midi(one_note))
    assert caught.value.code == "too_long"
    assert list(private_tmp.iterdir()) == []


def test_bytes_that_are_not_midi_are_refused() -> None:
    with pytest.raises(RenderError) as caught:
        render_ogg(b"this is not a MIDI file")
    assert caught.value.code == "bad_midi"


def test_a_render_is_counted_while_it_holds_temporary_files(
    midi: bytes, private_tmp: Path, monkeypatch: pytest.MonkeyPatch, subprocess_path: None
) -> None:
    from composer import audio

    seen: list[tuple[int, list[str]]] = []

    def fail(self: audio.BoundedFluidSynth, midi_file: str, audio_file: str) -> None:
        seen.append((audio.renders_in_progress(), os.listdir(private_tmp)))
        raise RenderError("stopped here", code="timeout")

    monkeypatch.setattr(audio.BoundedFluidSynth, "midi_to_audio", fail)
    assert audio.renders_in_progress() == 0
    with pytest.raises(RenderError):
        render_ogg(midi)
    assert seen[0][0] == 1 and seen[0][1], "the render held no temporary folder while counted"
    assert audio.renders_in_progress() == 0 and os.listdir(private_tmp) == []


def _longest_piece() -> bytes:
    """The longest piece the bot renders: 180 s (90 bars of 4/4 at 120 bpm), notes all the way."""
    bar = [72, HOLD, 74, HOLD, 76, HOLD, HOLD, HOLD, 79, HOLD, REST, HOLD, 77, 76, 74, HOLD]
    return melody_to_midi(Melody(tuple(bar * 90), tempo_bpm=120.0, program=40))


def test_the_longest_piece_renders_in_bounded_memory_under_a_megabyte() -> None:
    """Issue 10, fault 5: 180 s used to be read whole as stereo float (69 MB), then copied as mono, padded,
    scaled and converted (about 200 MB at the peak); now the WAV is streamed in blocks. And the voice
    message stays under Telegram's 1 MB, where it would be shown as a file."""
    import tracemalloc

    midi = _longest_piece()
    assert mido.MidiFile(file=io.BytesIO(midi)).length == pytest.approx(180.0, abs=0.01)
    tracemalloc.start()
    try:
        ogg = render_ogg(midi, timeout=120.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"
    assert len(ogg) < MAX_VOICE_BYTES
    audio, rate = soundfile.read(io.BytesIO(ogg), dtype="float32")
    assert abs(len(audio) / rate - 180.5) < 1.0
    assert np.abs(audio[-rate // 50 :]).max() < 0.02  # still faded out at the very end


def test_the_bitrate_falls_with_the_length_to_stay_under_the_limit() -> None:
    assert bitrate_kbps(32.0) == BITRATE_KBPS
    for seconds in (150.0, 180.0, 300.0, 600.0):
        assert bitrate_kbps(seconds) * 1000 / 8 * seconds < MAX_VOICE_BYTES
    assert bitrate_kbps(180.0) > 36  # still clean for mono music


def _loudness(ogg: bytes) -> np.ndarray:
    """RMS per 50 ms of the decoded voice message."""
    audio, rate = soundfile.read(io.BytesIO(ogg), dtype="float32")
    hop = rate // 20
    return np.sqrt(np.mean(audio[: len(audio) // hop * hop].reshape(-1, hop) ** 2, axis=1))


def test_the_loaded_synthesizer_sounds_as_the_fluidsynth_command(
    midi: bytes, ogg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from composer import audio

    assert audio._loaded_synth(audio.check_setup()) is not None, "pyfluidsynth / libfluidsynth missing"
    for synth in audio._synths.values():
        synth.lock.release()
    monkeypatch.setenv(SUBPROCESS_ENV, "1")
    by_process = render_ogg(midi)
    ours, theirs = _loudness(ogg), _loudness(by_process)
    assert len(ours) == len(theirs)
    assert np.corrcoef(ours, theirs)[0, 1] > 0.98  # the same notes at the same times
    assert np.abs(ours - theirs).max() < 0.05


def test_a_piece_does_not_hear_the_one_before() -> None:
    """The kept synthesizer is reset and its releasing voices and reverb played out between pieces."""
    held = Melody((60, *[HOLD] * 63), tempo_bpm=120.0, program=48)  # strings: a long release
    render_ogg(melody_to_midi(held))
    with pytest.raises(RenderError) as caught:
        render_ogg(melody_to_midi(Melody((REST, HOLD, HOLD, HOLD))))
    assert caught.value.code == "silent"


def test_the_loaded_synthesizer_keeps_the_time_limit(midi: bytes, private_tmp: Path) -> None:
    with pytest.raises(RenderError) as caught:
        render_ogg(midi, timeout=0.01)
    assert caught.value.code == "timeout"
    assert list(private_tmp.iterdir()) == []
    assert len(render_ogg(midi)) > 40_000  # and the synthesizer is free again afterwards


def test_a_second_thread_renders_with_a_process_meanwhile(midi: bytes) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: render_ogg(midi), range(2)))
    assert all(r.startswith(b"OggS") for r in results)


def test_the_same_midi_sounds_the_same_after_another_piece(midi: bytes) -> None:
    """Reset, played out, aligned to FluidSynth's 64-frame blocks and its reverb started afresh, the kept
    synthesizer renders a piece alike whatever came before it (to the reverb's modulation: not bit for
    bit, but the same loudness curve)."""
    render_ogg(midi)
    first = render_ogg(midi)
    render_ogg(melody_to_midi(Melody((60, *[HOLD] * 40, 64, *[HOLD] * 22), tempo_bpm=120.0, program=48)))
    again = render_ogg(midi)
    assert np.corrcoef(_loudness(first), _loudness(again))[0, 1] > 0.999
    assert np.abs(_loudness(first) - _loudness(again)).max() < 0.02
