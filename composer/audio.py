"""MIDI to an OGG/Opus voice message: FluidSynth renders, opusenc encodes.

FluidSynth renders a General MIDI soundfont at 48 kHz, as float: in this process by libfluidsynth
(through pyfluidsynth), one synthesizer per process and soundfont kept loaded between pieces, the MIDI's
events fed to it at their sample positions; or, where that library is missing (or
``$COMPOSER_AUDIO_SUBPROCESS`` is set), by a ``fluidsynth`` process per piece writing a WAV (driven
through midi2audio). Either way the audio is cut to the MIDI's length plus a short ring-out, mixed to
mono, kept in a temporary folder, peak-normalised and faded out, then encoded by Xiph's ``opusenc``
(opus-tools) reading raw PCM on stdin. The audio is read in blocks (once for its peak, unless known, once
to encode), so memory stays a few blocks whatever the length; the bitrate is chosen from the length so
the voice message stays under ``MAX_VOICE_BYTES``. Every step runs under one time limit; the temporary
folder is removed whatever happens.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import mido
import numpy as np
import soundfile
from midi2audio import FluidSynth

from composer.errors import RenderError

#: Debian's ``fluid-soundfont-gm``; overridden by the ``soundfont`` argument or ``$SOUNDFONT``.
DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SOUNDFONT_ENV = "SOUNDFONT"
#: Opus works at 48 kHz inside; rendering at that rate means no resampling anywhere.
SAMPLE_RATE = 48_000
#: Kept after the MIDI's end so the last note's release and reverb ring out, then faded.
TAIL_SECONDS = 0.5
FADE_SECONDS = 0.35
PEAK = 10 ** (-1.0 / 20)  # -1 dBFS: headroom for the codec's overshoot
SILENCE = 1e-4  # peak below about -80 dBFS counts as silence
#: Longer MIDI is refused before rendering: it would hold the worker and a large buffer.
MAX_SECONDS = 600.0
BITRATE_KBPS = 48  # mono music: clean at 48 kbit/s, about 6 KB a second
MIN_BITRATE_KBPS = 12
#: Telegram shows a voice message over 1 MB as a plain file: the bitrate is lowered to stay under it.
MAX_VOICE_BYTES = 1_000_000
#: Share of the byte budget left to the Ogg container and the encoder's variations.
CONTAINER_MARGIN = 0.92
#: Frames read from the WAV at a time (about 1.4 s: 0.5 MB as stereo float).
BLOCK_FRAMES = 1 << 16
OPUS_COMPLEXITY = 4  # measured: 40-50% less CPU than the default 10, 0.03 s less than 6, same size
#: Opus packets of 60 ms (three 20 ms CELT frames each) rather than opusenc's 20 ms: the same frames,
#: decoded to the very same samples, at about a sixth less of opusenc's CPU.
OPUS_FRAME_MS = 60

#: Set (to anything but "" or "0") to render with a ``fluidsynth`` process per piece, as before pyfluidsynth.
SUBPROCESS_ENV = "COMPOSER_AUDIO_SUBPROCESS"
#: Frames the in-process synthesizer renders per call (the events between land at their own frame).
SYNTH_BLOCK = 4096
#: FluidSynth renders this many frames at a time (FLUID_BUFSIZE) and applies MIDI events between them.
FLUID_BLOCK = 64
#: Before a piece, the previous one's releasing voices are played out (silently) for at most this long.
DRAIN_SECONDS = 4.0

FLUIDSYNTH_HINT = "apt-get install fluidsynth fluid-soundfont-gm"
OPUSENC_HINT = "apt-get install opus-tools"

_renders_lock = threading.Lock()
_renders = 0


def renders_in_progress() -> int:
    """How many ``render_ogg`` calls in this process hold temporary files right now (a process about to
    exit can wait for them, whichever thread they run in)."""
    return _renders


@contextlib.contextmanager
def _counted():
    global _renders
    with _renders_lock:
        _renders += 1
    try:
        yield
    finally:
        with _renders_lock:
            _renders -= 1


def check_setup(soundfont: Path | None = None) -> Path:
    """The soundfont to use after checking it and both tools; ``RenderError`` naming the fix if not.

    The soundfont is ``soundfont``, else ``$SOUNDFONT``, else Debian's FluidR3 GM.
    """
    for tool, hint in (("fluidsynth", FLUIDSYNTH_HINT), ("opusenc", OPUSENC_HINT)):
        if shutil.which(tool) is None:
            raise RenderError(f"{tool} is not installed: {hint}", code="missing_tool")
    path = Path(soundfont or os.environ.get(SOUNDFONT_ENV) or DEFAULT_SOUNDFONT)
    try:
        with path.open("rb") as f:
            header = f.read(12)
    except OSError as e:
        raise RenderError(
            f"soundfont {path} cannot be read ({e.strerror}): {FLUIDSYNTH_HINT}, or set {SOUNDFONT_ENV}",
            code="missing_soundfont",
        ) from e
    if header[:4] != b"RIFF" or header[8:12] != b"sfbk":
        raise RenderError(f"{path} is not a SoundFont (.sf2) file", code="missing_soundfont")
    return path


class BoundedFluidSynth(FluidSynth):
    """midi2audio's ``FluidSynth`` with a time limit and a checked exit status (0.1.1 has neither).

    Renders float samples so normalising quiet output loses nothing, loads only the samples of the
    instruments the MIDI uses (``synth.dynamic-sample-loading``: a quarter less CPU with the 140 MB
    FluidR3 soundfont) and leaves chorus off (General MIDI's default chorus send is 0 anyway).
    """

    def __init__(self, sound_font: Path, sample_rate: int, timeout: float) -> None:
        super().__init__(str(sound_font), sample_rate)
        self.timeout = timeout

    def midi_to_audio(self, midi_file: str, audio_file: str) -> None:
        command = [
            "fluidsynth", "-ni", "-q", "-O", "float", "-C", "0", "-o", "synth.dynamic-sample-loading=1",
            self.sound_font, midi_file, "-F", audio_file, "-r", str(self.sample_rate),
        ]  # fmt: skip
        _run(command, self.timeout)


def render_ogg(midi: bytes, soundfont: Path | None = None, timeout: float = 20.0,
               max_bytes: int = MAX_VOICE_BYTES) -> bytes:
    """OGG/Opus bytes (mono, 48 kHz) of a Standard MIDI File, as long as the MIDI plus a short tail, at
    most ``max_bytes`` long (at 48 kbit/s up to about 2.5 minutes, then a lower bitrate).

    Raises ``RenderError``: ``missing_tool`` / ``missing_soundfont`` (message names the package),
    ``timeout`` when rendering and encoding take longer than ``timeout`` seconds, ``bad_midi``,
    ``too_long`` (over ``MAX_SECONDS``), ``silent`` when nothing audible came out, ``render_failed``
    for any other failure.
    """
    deadline = time.monotonic() + timeout
    font = check_setup(soundfont)
    try:
        # merged tracks, times in seconds between messages: one pass (``MidiFile.length`` would be another)
        messages = list(mido.MidiFile(file=io.BytesIO(midi)))
        midi_seconds = sum(message.time for message in messages)
    except (OSError, ValueError, EOFError, KeyError, TypeError) as e:
        raise RenderError(f"not a playable MIDI file: {e}", code="bad_midi") from e
    if midi_seconds > MAX_SECONDS:
        raise RenderError(f"the MIDI lasts {midi_seconds:.0f} s, over {MAX_SECONDS:.0f} s", code="too_long")
    frames = round((midi_seconds + TAIL_SECONDS) * SAMPLE_RATE)
    with _counted(), tempfile.TemporaryDirectory(prefix="composer-audio-") as folder:
        synth = _loaded_synth(font)
        if synth is not None:
            pcm_path = Path(folder, "out.f32")
            try:
                peak = synth.render(messages, frames, pcm_path, deadline)
            finally:
                synth.lock.release()
            blocks: Callable[[], Iterator[np.ndarray]] = lambda: _pcm_blocks(pcm_path, frames)  # noqa: E731
        else:
            peak, blocks = _render_with_process(midi, font, frames, midi_seconds, Path(folder), deadline)
        if peak < SILENCE:
            raise RenderError("the rendered audio is silent (no notes, or an empty soundfont?)",
                              code="silent")
        kbps = bitrate_kbps(frames / SAMPLE_RATE, max_bytes)
        while True:
            ogg = _encode_opus(blocks, frames, PEAK / peak, kbps, Path(folder), _left(deadline))
            if len(ogg) <= max_bytes or kbps <= MIN_BITRATE_KBPS:
                return ogg
            kbps = max(MIN_BITRATE_KBPS, kbps * max_bytes / len(ogg) * CONTAINER_MARGIN)


def _render_with_process(midi: bytes, font: Path, frames: int, midi_seconds: float, folder: Path,
                         deadline: float) -> tuple[float, Callable[[], Iterator[np.ndarray]]]:
    """The fallback: a ``fluidsynth`` process writes a float WAV; its peak and a reader of its blocks."""
    midi_path, wav_path = folder / "in.mid", folder / "out.wav"
    midi_path.write_bytes(midi)
    BoundedFluidSynth(font, SAMPLE_RATE, _left(deadline)).midi_to_audio(str(midi_path), str(wav_path))
    try:
        info = soundfile.info(str(wav_path))
        peak = _peak(wav_path, frames)
    except (OSError, RuntimeError) as e:  # soundfile.LibsndfileError is a RuntimeError
        raise RenderError(f"FluidSynth wrote no readable audio: {e}") from e
    if info.samplerate != SAMPLE_RATE or info.frames < frames - SAMPLE_RATE * TAIL_SECONDS:
        raise RenderError(f"FluidSynth wrote {info.frames / info.samplerate:.2f} s at {info.samplerate} "
                          f"Hz, expected {midi_seconds:.2f} s at {SAMPLE_RATE} Hz")
    return peak, lambda: _mono_blocks(wav_path, frames)


class _Synth:
    """One libfluidsynth synthesizer with the soundfont loaded, kept for the life of the process.

    Settings as the ``fluidsynth`` command's: 16 MIDI channels, reverb on, chorus off, gain 0.2,
    samples loaded for the instruments in use (``synth.dynamic-sample-loading``). ``lock`` is held by the
    one render using it.
    """

    def __init__(self, fluidsynth: object, font: Path) -> None:
        self.lock = threading.Lock()
        self._fs = fluidsynth
        self._synth = fluidsynth.Synth(  # type: ignore[attr-defined]
            gain=0.2, samplerate=float(SAMPLE_RATE), channels=16,
            **{"synth.chorus.active": 0, "synth.dynamic-sample-loading": 1},
        )
        if self._synth.sfload(str(font)) < 0:
            self._synth.delete()
            raise RenderError(f"FluidSynth could not load the soundfont {font}", code="missing_soundfont")
        write = fluidsynth._fl.fluid_synth_write_float  # type: ignore[attr-defined]
        write.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                          ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        write.restype = ctypes.c_int
        self._write = write
        self._reset_effects = getattr(fluidsynth._fl, "fluid_synth_set_sample_rate", None)  # type: ignore[attr-defined]
        if self._reset_effects is not None:
            self._reset_effects.argtypes = [ctypes.c_void_p, ctypes.c_float]
            self._reset_effects.restype = None
        self._stereo = np.zeros(2 * SYNTH_BLOCK, dtype=np.float32)
        self._rendered = 0  # frames so far: FluidSynth computes 64 at a time and applies events between

    def _block(self, n: int) -> np.ndarray:
        """The next ``n`` (at most ``SYNTH_BLOCK``) frames, mixed to mono (a view, valid until the next)."""
        address = self._stereo.ctypes.data
        if self._write(self._synth.synth, n, address, 0, 2, address + 4, 0, 2) != 0:
            raise RenderError("FluidSynth failed to render")
        self._rendered += n
        return (self._stereo[0 : 2 * n : 2] + self._stereo[1 : 2 * n : 2]) * np.float32(0.5)

    def _drain(self, deadline: float) -> None:
        """Silence: every channel reset, the last piece's releasing voices and reverb played out unheard,
        and the synthesizer's 64-frame blocks aligned with the piece's start as in a fresh one (otherwise
        notes in unison land with other phases: the same MIDI would not sound the same twice)."""
        self._synth.system_reset()
        if self._reset_effects is not None:  # the reverb's modulated delay lines start as in a fresh one
            for rate in (SAMPLE_RATE / 2, SAMPLE_RATE):  # (setting the rate it has changes nothing)
                self._reset_effects(self._synth.synth, ctypes.c_float(rate))
        for _ in range(round(DRAIN_SECONDS * SAMPLE_RATE / SYNTH_BLOCK)):
            quiet = float(np.abs(self._block(SYNTH_BLOCK)).max()) < 1e-6
            if quiet and self._synth.get_active_voice_count() == 0:
                break
            _left(deadline)
        if self._rendered % FLUID_BLOCK:
            self._block(FLUID_BLOCK - self._rendered % FLUID_BLOCK)

    def render(self, messages: list[mido.Message], frames: int, path: Path, deadline: float) -> float:
        """Play ``messages`` (a MIDI file's, merged, ``time`` in seconds since the one before) for
        ``frames`` frames into ``path`` as raw mono float32; the peak."""
        self._drain(deadline)
        synth = self._synth
        peak = 0.0
        done = 0
        seconds = 0.0
        with path.open("wb") as out:

            def render_to(frame: int) -> None:
                nonlocal done, peak
                while done < frame:
                    block = self._block(min(SYNTH_BLOCK, frame - done))
                    peak = max(peak, float(np.abs(block).max(initial=0.0)))
                    out.write(block.tobytes())
                    done += len(block)
                    _left(deadline)

            for message in messages:
                seconds += message.time
                if message.is_meta:
                    continue
                render_to(min(frames, round(seconds * SAMPLE_RATE)))
                kind = message.type
                if kind == "note_on":
                    synth.noteon(message.channel, message.note, message.velocity)
                elif kind == "note_off":
                    synth.noteoff(message.channel, message.note)
                elif kind == "control_change":
                    synth.cc(message.channel, message.control, message.value)
                elif kind == "program_change":
                    synth.program_change(message.channel, message.program)
                elif kind == "pitchwheel":
                    synth.pitch_bend(message.channel, message.pitch)
            render_to(frames)
        return peak


_synths_lock = threading.Lock()
_synths: dict[tuple[int, Path], _Synth] = {}


def _loaded_synth(font: Path) -> _Synth | None:
    """This process's synthesizer for ``font``, locked for the caller; None to use a ``fluidsynth``
    process instead: no libfluidsynth or pyfluidsynth, ``$COMPOSER_AUDIO_SUBPROCESS`` set, or another
    thread of this process rendering with it right now."""
    if os.environ.get(SUBPROCESS_ENV, "") not in ("", "0"):
        return None
    key = (os.getpid(), font.resolve())  # a forked child makes its own: a synthesizer is not fork-safe
    with _synths_lock:
        synth = _synths.get(key)
        if synth is None:
            try:  # pyfluidsynth; raises if libfluidsynth is missing, and prints where it is found if $CI
                with contextlib.redirect_stdout(io.StringIO()):
                    import fluidsynth
            except (ImportError, OSError):
                return None
            if not hasattr(fluidsynth, "Synth") or getattr(fluidsynth._fl, "fluid_synth_write_float",
                                                          None) is None:
                return None  # the unrelated "fluidsynth" package of 2012, or a library without it
            synth = _synths[key] = _Synth(fluidsynth, font)
    return synth if synth.lock.acquire(blocking=False) else None


def bitrate_kbps(seconds: float, max_bytes: int = MAX_VOICE_BYTES) -> float:
    """The Opus bitrate for ``seconds`` of audio: ``BITRATE_KBPS``, or less to stay under ``max_bytes``."""
    budget = max_bytes * 8 * CONTAINER_MARGIN / max(seconds, 1.0) / 1000
    return max(MIN_BITRATE_KBPS, min(float(BITRATE_KBPS), budget))


def _mono_blocks(wav_path: Path, frames: int) -> Iterator[np.ndarray]:
    """The first ``frames`` frames of the WAV as mono float32 blocks, zero-padded to ``frames``."""
    done = 0
    for block in soundfile.blocks(str(wav_path), blocksize=BLOCK_FRAMES, frames=frames, dtype="float32",
                                  always_2d=True):
        done += len(block)
        yield block.mean(axis=1, dtype=np.float32)
    while done < frames:
        size = min(BLOCK_FRAMES, frames - done)
        done += size
        yield np.zeros(size, dtype=np.float32)


def _peak(wav_path: Path, frames: int) -> float:
    return max((float(np.abs(block).max(initial=0.0)) for block in _mono_blocks(wav_path, frames)),
               default=0.0)


def _pcm_blocks(path: Path, frames: int) -> Iterator[np.ndarray]:
    """The raw mono float32 file the in-process synthesizer wrote, in blocks, zero-padded to ``frames``."""
    done = 0
    with path.open("rb") as f:
        while done < frames:
            block = np.fromfile(f, dtype=np.float32, count=min(BLOCK_FRAMES, frames - done))
            if not len(block):
                block = np.zeros(min(BLOCK_FRAMES, frames - done), dtype=np.float32)
            done += len(block)
            yield block


def _encode_opus(blocks: Callable[[], Iterator[np.ndarray]], frames: int, gain: float, kbps: float,
                 folder: Path, timeout: float) -> bytes:
    """Normalise (``gain``), fade out the tail with a half cosine and encode, block by block."""
    deadline = time.monotonic() + timeout
    command = [
        "opusenc", "--quiet", "--raw", "--raw-bits", "16", "--raw-rate", str(SAMPLE_RATE), "--raw-chan", "1",
        "--bitrate", f"{kbps:.1f}", "--comp", str(OPUS_COMPLEXITY), "--framesize", str(OPUS_FRAME_MS),
        "-", str(folder / "out.opus"),
    ]  # fmt: skip
    fade = min(frames, round(FADE_SECONDS * SAMPLE_RATE))
    curve = (0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, fade))).astype(np.float32)
    errors = (folder / "opusenc.err").open("wb")
    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors)
    except OSError as e:
        errors.close()
        raise RenderError(f"opusenc could not start ({e})", code="missing_tool") from e
    try:
        assert process.stdin is not None
        start = 0
        for block in blocks():
            block *= gain
            end = start + len(block)
            if end > frames - fade:
                first = max(start, frames - fade)
                block[first - start :] *= curve[first - (frames - fade) : end - (frames - fade)]
            start = end
            np.clip(block, -1.0, 1.0, out=block)
            block *= 32767
            process.stdin.write(np.round(block, out=block).astype("<i2").tobytes())
            if time.monotonic() > deadline:
                raise RenderError(f"opusenc took longer than {timeout:.1f} s", code="timeout")
        process.stdin.close()
        status = process.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired as e:
        raise RenderError(f"opusenc took longer than {timeout:.1f} s", code="timeout") from e
    except (BrokenPipeError, OSError) as e:
        status = process.wait()
        raise RenderError(f"opusenc stopped reading (exit status {status}): {e}") from e
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        errors.close()
    if status != 0:
        detail = (folder / "opusenc.err").read_bytes().decode(errors="replace").strip()[-300:]
        raise RenderError(f"opusenc failed with exit status {status}: {detail}")
    ogg = (folder / "out.opus").read_bytes()
    if not (ogg.startswith(b"OggS") and b"OpusHead" in ogg[:64]):
        raise RenderError("opusenc wrote no Ogg Opus stream")
    return ogg


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise RenderError("audio rendering ran out of time", code="timeout")
    return left


def _run(command: list[str], timeout: float, stdin: bytes | None = None) -> bytes:
    """Stdout of ``command``; killed after ``timeout`` seconds; ``RenderError`` on any failure."""
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise RenderError(f"{command[0]} took longer than {timeout:.1f} s", code="timeout") from e
    except OSError as e:
        raise RenderError(f"{command[0]} could not start ({e})", code="missing_tool") from e
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip()[-300:]
        raise RenderError(f"{command[0]} failed with exit status {done.returncode}: {detail}")
    return done.stdout
