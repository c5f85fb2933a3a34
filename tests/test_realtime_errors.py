"""Bad inputs: one line on stderr, non-zero exit, no output file (and no temporary file) left behind."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from realtime.cli import main


def bad_sources(tmp_path, carphone) -> dict[str, tuple[str, str]]:
    """name -> (--source value, text the error line must contain)"""
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(carphone.read_bytes()[: carphone.stat().st_size // 2])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    image_as_video = tmp_path / "photo.mp4"  # a PNG under a video name
    ok, png = cv2.imencode(".png", np.full((64, 64, 3), 128, np.uint8))
    image_as_video.write_bytes(png.tobytes())
    return {
        "no camera": ("7", "No camera at index 7"),
        "missing file": (str(tmp_path / "nope.mp4"), "No such file"),
        "corrupt file": (str(truncated), "not a readable video"),
        "zero-byte file": (str(empty), "empty (0 bytes)"),
        "image given as video": (str(image_as_video), "is an image, not a video"),
    }


CASES = ["no camera", "missing file", "corrupt file", "zero-byte file", "image given as video", "unknown style"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_leaves_no_output(case, tmp_path, carphone, style_name, capsys):
    out = tmp_path / "out" / "result.mp4"
    out.parent.mkdir()
    if case == "unknown style":
        args, expect = ["--source", str(carphone), "--style", "mona_lisa"], "Unknown style 'mona_lisa'. Known styles:"
    else:
        source, expect = bad_sources(tmp_path, carphone)[case]
        args = ["--source", source, "--style", style_name]
    code = main(args + ["--output", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and expect in err, err
    assert list(out.parent.iterdir()) == [], "output or temporary file left behind"


def test_bad_flags_are_refused(capsys):
    assert main(["--strength", "2", "--print-config"]) == 2
    assert "--strength must be between 0 and 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--size", "big"])
    assert exc.value.code == 2


def test_unwritable_output_is_refused_before_any_work(tmp_path, carphone, style_name, capsys):
    code = main(["--source", str(carphone), "--style", style_name, "--output", str(tmp_path / "no" / "dir.mp4")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    code = main(["--source", str(carphone), "--style", style_name, "--output", str(tmp_path / "x.avi")])
    assert code == 2 and "must end in .mp4" in capsys.readouterr().err


def test_print_config_shows_the_resolved_choices(style_name, capsys):
    import json

    assert main(["--style", style_name, "--device", "cpu", "--mode", "split", "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["style"]["styles"][0] == style_name and cfg["style"]["dtype"] == "float32"
    assert cfg["mode"] == "split" and cfg["style"]["scale"] == 0.5
