"""Bad inputs: one line on stderr, non-zero exit, no output file (and no temporary file) left behind."""
from __future__ import annotations


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
        "network stream": ("rtsp://192.0.2.1/stream", "rtsp://192.0.2.1/stream is a network stream"),
    }


CASES = ["no camera", "missing file", "corrupt file", "zero-byte file", "image given as video", "network stream",
         "unknown style", "missing painting", "unreadable painting", "no AdaIN decoder"]


def shown_lines(err: str) -> list[str]:
    """The lines a terminal ends up showing: text before a carriage return is overwritten (tqdm's bar,
    erased on close, shares the error's line)."""
    return [line.rsplit("\r", 1)[-1] for line in err.split("\n") if line.rsplit("\r", 1)[-1].strip()]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_leaves_no_output(case, tmp_path, carphone, style_name, capfd, monkeypatch):
    """capfd, not capsys: native libraries (OpenCV probing a camera, MediaPipe) write to fd 2 directly."""
    out = tmp_path / "out" / "result.mp4"
    out.parent.mkdir()
    if case == "unknown style":
        args, expect = ["--source", str(carphone), "--style", "mona_lisa"], "Unknown style 'mona_lisa'. Known styles:"
    elif case == "missing painting":
        missing = tmp_path / "mona_lisa.jpg"
        args, expect = ["--source", str(carphone), "--style", str(missing)], f"Painting file not found: {missing}"
    elif case in ("unreadable painting", "no AdaIN decoder"):
        painting = tmp_path / "painting.png"
        painting.write_bytes(b"not a picture" if case == "unreadable painting" else cv2.imencode(".png", np.full((64, 64, 3), 90, np.uint8))[1].tobytes())
        args = ["--source", str(carphone), "--style", str(painting)]
        expect = "painting.png" if case == "unreadable painting" else "No AdaIN decoder"
        if case == "no AdaIN decoder":
            monkeypatch.setattr("nets.adain.DECODER_FILE", "missing.decoder.safetensors")
    else:
        source, expect = bad_sources(tmp_path, carphone)[case]
        args = ["--source", source, "--style", style_name]
    if case == "no camera":  # probe OpenCV for real even on machines without /dev/video*
        monkeypatch.setattr("realtime.sources.cameras_present", lambda: True)
    code = main(args + ["--output", str(out)])
    err = capfd.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and expect in err, err
    assert list(out.parent.iterdir()) == [], "output or temporary file left behind"


def test_bad_flags_are_refused(capsys):
    assert main(["--strength", "2", "--print-config"]) == 2
    assert "--strength must be between 0 and 1" in capsys.readouterr().err
    for every in ("0", "-3"):  # --mode full with a file builds no segmenter: refused by the CLI itself
        assert main(["--mask-every", every, "--mode", "full", "--output", "x.mp4", "--print-config"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"error: --mask-every must be 1 or more, got {every}.", err
    for size, said in (("big", "must look like 640x480"), ("100000x100000", "at most 8K")):
        with pytest.raises(SystemExit) as exc:
            main(["--size", size])
        assert exc.value.code == 2 and said in capsys.readouterr().err


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


def test_unexpected_error_is_one_line_exit_1_and_leaves_no_output(tmp_path, carphone, style_name, capfd,
                                                                   monkeypatch):
    """The last resort at the CLI edge: an exception nobody named (here raised mid-run by the frame
    processing) is one line naming its type, exit 1, the output removed; STYLECAM_DEBUG=1 re-raises."""
    def broken(self, frame):
        raise ZeroDivisionError("the stage\nbroke")

    monkeypatch.setattr("realtime.pipeline.Pipeline.process", broken)
    monkeypatch.delenv("STYLECAM_DEBUG", raising=False)
    out = tmp_path / "out.mp4"
    args = ["--source", str(carphone), "--style", style_name, "--output", str(out), "--max-frames", "3"]
    assert main(args) == 1
    lines = shown_lines(capfd.readouterr().err)
    assert lines == ["error: unexpected ZeroDivisionError: the stage broke (set STYLECAM_DEBUG=1 for the traceback)"]
    assert list(tmp_path.iterdir()) == [], "output or temporary file left behind"
    monkeypatch.setenv("STYLECAM_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(args)


def test_broken_segmentation_model_is_one_line(tmp_path, carphone, style_name, capfd, monkeypatch):
    """MediaPipe refusing its model (a damaged install) is a SegmentError naming the fix, not a traceback."""
    bad = tmp_path / "selfie.tflite"
    bad.write_bytes(b"not a flatbuffer")
    monkeypatch.setattr("realtime.segment.model_path", lambda model: str(bad))
    out = tmp_path / "out.mp4"
    code = main(["--source", str(carphone), "--style", style_name, "--mode", "background", "--output", str(out)])
    lines = shown_lines(capfd.readouterr().err)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: MediaPipe could not build the person segmenter") and "--mode full" in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".*part*"))


@pytest.mark.parametrize("case", ["same path", "through a symlink", "given twice"])
def test_an_output_that_would_overwrite_the_input_is_refused(case, tmp_path, carphone, capfd):
    """Inputs are never modified: before this check `--source a.mp4 --output a.mp4` replaced the clip
    with its painted version."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(carphone.read_bytes())
    before = clip.read_bytes()
    outputs = {"same path": [str(clip)],
               "through a symlink": [str(tmp_path / "link.mp4")],
               "given twice": [str(tmp_path / "a.mp4"), str(tmp_path / "." / "a.mp4")]}[case]
    (tmp_path / "link.mp4").symlink_to(clip)
    args = ["--source", str(clip)]
    for out in outputs:
        args += ["--output", out]
    assert main(args + ["--max-frames", "2"]) == 2
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: Output "), err
    assert ("given twice" in err) == (case == "given twice"), err
    assert clip.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "link.mp4"], "an output was written"


def test_style_alpha_out_of_range_is_refused(capsys):
    assert main(["--style-alpha", "1.5", "--output", "x.mp4"]) != 0
    err = capsys.readouterr().err.strip()
    assert err == "error: --style-alpha must be between 0 and 1, got 1.5.", err


@pytest.mark.parametrize("style", [None, "udnie"])
def test_a_damaged_weights_folder_is_one_line_and_exit_2(style, tmp_path, carphone, capfd, monkeypatch):
    """A manifest that is not JSON (a truncated copy) was reported through the last-resort handler as an
    'unexpected StyleError' with exit 1, with or without --style."""
    (tmp_path / "manifest.json").write_text('{"styles": {')
    monkeypatch.setenv("STYLECAM_WEIGHTS", str(tmp_path))
    out = tmp_path / "out.mp4"
    code = main(["--source", str(carphone), "--output", str(out)] + (["--style", style] if style else []))
    err = capfd.readouterr().err.strip()
    assert code == 2 and len(shown_lines(err)) == 1, err
    assert "manifest.json" in err and "unexpected" not in err
    assert not out.exists()


def test_an_output_that_is_a_folder_is_refused_before_any_frame(tmp_path, carphone, style_name, capfd):
    """It was found at the rename after the whole job, and the work was thrown away."""
    folder = tmp_path / "painted.mp4"
    folder.mkdir()
    code = main(["--source", str(carphone), "--style", style_name, "--output", str(folder), "--max-frames", "2"])
    err = capfd.readouterr().err
    assert code == 2 and "is a folder" in err and "frame/s" not in err  # no progress bar: refused before it
    assert list(folder.iterdir()) == [] and [p.name for p in tmp_path.iterdir()] == ["painted.mp4"]


def test_a_video_without_frames_is_an_error_not_a_success_naming_a_missing_file(tmp_path, style_name, capfd):
    import av

    silent = tmp_path / "audio_only.mkv"  # a video stream that never gets a frame, beside an audio one
    with av.open(str(silent), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=44100)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1024
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    out_path = tmp_path / "out.mp4"
    code = main(["--source", str(silent), "--style", style_name, "--output", str(out_path)])
    err = capfd.readouterr().err
    assert code == 2 and "gave no frame to paint; nothing was written" in err and "wrote" not in err
    assert not out_path.exists()


def test_a_one_pixel_image_is_one_line(tmp_path, style_name, capfd):
    dot = tmp_path / "dot.png"
    cv2.imwrite(str(dot), np.full((1, 1, 3), 90, np.uint8))
    code = main(["--source", str(dot), "--style", style_name, "--output", str(tmp_path / "dot.mp4")])
    err = capfd.readouterr().err
    assert code == 2 and "too small" in shown_lines(err)[-1] and "unexpected" not in err


def test_a_summary_names_only_files_that_were_written():
    from realtime.pipeline import Summary

    line = Summary(frames=0, stopped_by="Ctrl-C", files={"a.mp4": 0}).line()
    assert "wrote" not in line and "no frame reached a.mp4, so it was not written" in line
    assert "wrote b.mp4 (3 frames)" in Summary(frames=3, files={"b.mp4": 3}).line()


def test_split_defaults_and_an_unused_style2_are_said(tmp_path, style_name):
    """Split mode without --style2 silently painted the background in the next registered style (with a
    painting file, the same painting: split looked like full); --style2 outside split mode was loaded and
    not used, without a word."""
    from realtime.cli import build_config, build_parser

    def config(*flags):
        return build_config(build_parser().parse_args(["--source", "sample", "--output", str(tmp_path / "o.mp4"), *flags]))

    split = config("--style", style_name, "--mode", "split")
    second = split.style.styles[1]
    assert second != style_name and any(f"background is painted in {second}" in n for n in split.notes)
    painting = tmp_path / "p.png"
    cv2.imwrite(str(painting), np.full((64, 64, 3), 90, np.uint8))
    same = config("--style", str(painting), "--mode", "split")
    assert any("painted in p, as the person is" in n for n in same.notes)
    unused = config("--style", style_name, "--style2", second, "--mode", "full")
    assert unused.style.style2 is None
    assert any("--style2 paints the background in split mode only" in n for n in unused.notes)
    assert not config("--style", style_name, "--style2", second, "--mode", "split").notes
