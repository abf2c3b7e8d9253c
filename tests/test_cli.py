"""``python -m composer styles`` and ``compose``: files written, and one-line errors with status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from composer.cli import main
from composer.extract import melody_from_midi


def test_styles_lists_each_style_with_a_line(untrained_models_dir: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    assert main(["--models", str(untrained_models_dir), "styles"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["alpha", "beta", "gamma"]
    assert "untrained test fixture beta (Flute, 110 bpm; metres 3/4, 4/4; modes major, minor; top-p 0.95)" \
        in lines[1]
    assert lines[2].endswith("; top-p 0.3)")


def test_compose_writes_the_melody(untrained_models_dir: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "tune.mid"
    args = ["--models", str(untrained_models_dir), "compose", "alpha", "--bars", "8", "--temperature", "0.8",
            "--top-p", "0.9", "--seed", "42", "--tempo", "90", "--instrument", "violin", "--out", str(out)]
    assert main(args) == 0
    melody = melody_from_midi(out)
    assert melody.n_bars == 8 and melody.tempo_bpm == 90 and melody.program == 40
    assert "seed 42" in capsys.readouterr().out
    first = out.read_bytes()
    assert main(args) == 0 and out.read_bytes() == first


def test_compose_count_and_primer(untrained_models_dir: Path, tmp_path: Path) -> None:
    models = ["--models", str(untrained_models_dir)]
    out = tmp_path / "t.mid"
    assert main([*models, "compose", "beta", "--bars", "4", "--count", "3", "--metre", "3/4",
                 "--key", "D minor", "--out", str(out)]) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["t-1.mid", "t-2.mid", "t-3.mid"]
    assert len({(tmp_path / f).read_bytes() for f in files}) == 3
    out = tmp_path / "more.mid"
    assert main([*models, "compose", "alpha+gamma", "--primer", str(tmp_path / "t-1.mid"), "--primer-bars",
                 "2", "--bars", "4", "--out", str(out)]) == 0
    continued = melody_from_midi(out)
    assert continued.time_signature == (3, 4) and continued.n_bars == 6  # the primer's metre
    assert main([*models, "compose", "beta", "--metre", "6/8", "--out", str(out)]) == 2


@pytest.mark.parametrize("args, message", [
    (["compose", "polka", "--out", "{tmp}/x.mid"], "unknown style 'polka'"),
    (["compose", "alpha", "--temperature", "0", "--out", "{tmp}/x.mid"], "temperature must be between"),
    (["compose", "alpha", "--temperature", "7", "--out", "{tmp}/x.mid"], "temperature must be between"),
    (["compose", "alpha", "--temperature", "banana", "--out", "{tmp}/x.mid"], "invalid float value"),
    (["compose", "alpha", "--primer", "{tmp}/notmidi.mid", "--out", "{tmp}/x.mid"], "not a MIDI file"),
    (["compose", "alpha", "--primer", "{tmp}/missing.mid", "--out", "{tmp}/x.mid"], "no such file"),
    (["compose", "alpha", "--instrument", "kazoo", "--out", "{tmp}/x.mid"], "unknown instrument"),
    (["compose", "alpha", "--count", "0", "--out", "{tmp}/x.mid"], "--count must be"),
    (["compose", "alpha:2,beta:x", "--out", "{tmp}/x.mid"], "not a number"),
    (["compose", "alpha", "--out", "{tmp}/nofolder/x.mid"], "is not a folder"),
    (["compose", "alpha"], "required: --out"),
    (["compose", "alpha", "--bars", "1000", "--out", "{tmp}/x.mid"], "bars must be between"),
])
def test_bad_arguments_give_one_line_and_status_2(untrained_models_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture, args: list[str],
                                                  message: str) -> None:
    (tmp_path / "notmidi.mid").write_text("hello, not a MIDI file\n")
    argv = ["--models", str(untrained_models_dir), *(a.replace("{tmp}", str(tmp_path)) for a in args)]
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(argv))
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert captured.err.startswith("error: ") and message in captured.err
    assert not (tmp_path / "x.mid").exists()


def test_module_entry_point_reports_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "composer", "--models", str(tmp_path), "compose", "x",
                             "--temperature", "banana", "--out", str(tmp_path / "x.mid")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_recipe_overrides_are_written_as_the_flags_that_give_them() -> None:
    from composer.cli import _flag

    assert _flag("units", 96) == "--units 96"
    assert _flag("learning_rate", 0.005) == "--learning-rate 0.005"
    assert _flag("pitch_class_sharing", True) == "--pitch-class-sharing"
    assert _flag("pitch_class_sharing", False) == "--no-pitch-class-sharing"
