"""File mode end to end: real clip with a person (carphone), real MediaPipe, a real trained style."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from conftest import ROOT, read_video, run_cli
from nets import adain, registry
from nets.images import save_rgb
from realtime.cli import build_config, build_parser
from realtime.config import SegmentConfig
from realtime.pipeline import Pipeline
from realtime.segment import Segmenter


def test_file_mode_keeps_frame_count_size_and_fps(carphone, style_name, tmp_path):
    out = tmp_path / "out.mp4"
    r = run_cli("--source", str(carphone), "--style", style_name, "--output", str(out))
    assert r.returncode == 0, r.stderr
    frames, fps = read_video(out)
    assert len(frames) == 120
    assert frames[0].shape == (144, 176, 3)
    assert fps == pytest.approx(30000 / 1001, rel=1e-4)
    assert f"wrote {out} (120 frames)" in r.stderr
    assert not list(tmp_path.glob(".*part*")), "temporary file left behind"


def region_differences(carphone, style_name, tmp_path, mode: str) -> tuple[float, float]:
    """Mean |output - input| inside the person and inside the background, on 12 frames. Regions come
    from MediaPipe on the input, eroded so mask edges (feathered on purpose) do not count."""
    out = tmp_path / f"{mode}.mp4"
    args = ["--source", str(carphone), "--style", style_name, "--mode", mode, "--output", str(out),
            "--max-frames", "12", "--device", "cpu"]
    summary = Pipeline(build_config(build_parser().parse_args(args))).run()
    assert summary.frames == 12
    got, _ = read_video(out)
    src, _ = read_video(carphone)
    segmenter = Segmenter(config=SegmentConfig(smoothing=0, refine=False, feather=0))
    kernel = np.ones((9, 9), np.uint8)
    person_d, background_d = [], []
    for inp, outp in zip(src[:12], got):
        mask = segmenter(inp)
        person = cv2.erode((mask > 0.9).astype(np.uint8), kernel).astype(bool)
        background = cv2.erode((mask < 0.1).astype(np.uint8), kernel).astype(bool)
        assert person.sum() > 1000 and background.sum() > 1000, "carphone should show a person and a background"
        diff = np.abs(outp.astype(np.float32) - inp.astype(np.float32)).mean(axis=2)
        person_d.append(diff[person].mean())
        background_d.append(diff[background].mean())
    segmenter.close()
    return float(np.mean(person_d)), float(np.mean(background_d))


def test_background_mode_keeps_the_person_real(carphone, style_name, tmp_path):
    person, background = region_differences(carphone, style_name, tmp_path, "background")
    assert person < 10, f"person changed by {person:.1f} levels"
    assert background > 2.5 * person and background > 15, (person, background)


def test_person_mode_keeps_the_background_real(carphone, style_name, tmp_path):
    person, background = region_differences(carphone, style_name, tmp_path, "person")
    assert background < 10, f"background changed by {background:.1f} levels"
    assert person > 2.5 * background and person > 15, (person, background)


@pytest.mark.skipif(not (registry.weights_dir() / adain.DECODER_FILE).is_file(), reason="no AdaIN decoder in weights/")
def test_any_painting_on_the_person_a_trained_style_behind(carphone, style_name, tmp_path):
    """split mode with a picture the decoder never saw (scikit-image's Hubble deep field) on the person."""
    import skimage.data

    painting = save_rgb(tmp_path / "hubble.png", np.ascontiguousarray(skimage.data.hubble_deep_field()[::2, ::2]))
    out = tmp_path / "split.mp4"
    r = run_cli("--source", str(carphone), "--style", str(painting), "--style2", style_name, "--mode", "split",
                "--style-alpha", "0.8", "--output", str(out), "--max-frames", "6", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    got, _ = read_video(out)
    src, _ = read_video(carphone)
    assert len(got) == 6
    assert np.mean([np.abs(g.astype(int) - s.astype(int)).mean() for g, s in zip(got, src)]) > 10


def test_audio_stream_survives(clip_with_audio, style_name, tmp_path):
    import av

    out = tmp_path / "with_audio.mp4"
    r = run_cli("--source", str(clip_with_audio), "--style", style_name, "--output", str(out))
    assert r.returncode == 0, r.stderr
    with av.open(str(clip_with_audio)) as a, av.open(str(out)) as b:
        assert b.streams.audio, "the output lost the audio stream"
        sa, sb = a.streams.audio[0], b.streams.audio[0]
        assert sb.codec_context.name == sa.codec_context.name and sb.sample_rate == sa.sample_rate
        dur_a = float(sa.duration * sa.time_base)
        dur_b = float(sb.duration * sb.time_base)
    assert dur_b == pytest.approx(dur_a, abs=0.05)
    assert len(read_video(out)[0]) == 45


@pytest.mark.parametrize("display, why", [(None, "DISPLAY is not set"), (":987", "the X display :987 does not answer")])
def test_default_run_without_display_writes_the_sample(display, why, tmp_path, style_name):
    """What a new user types: `python run_cam.py` (here capped), no camera, no display; or a DISPLAY
    naming an X server that is gone (a stale ssh forward), where OpenCV's Qt used to abort the process."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    if display:
        env["DISPLAY"] = display
    r = subprocess.run([sys.executable, str(ROOT / "run_cam.py"), "--max-frames", "8"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "stylecam_out.mp4"
    assert f"No display ({why}): writing the video to {out}" in r.stderr
    frames, _ = read_video(out)
    assert len(frames) == 8 and frames[0].shape == (480, 640, 3)


@pytest.mark.parametrize("signum, said", [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")])
def test_a_stop_signal_leaves_a_playable_file_with_the_frames_reported(signum, said, tmp_path, style_name):
    """Ctrl-C, and `kill`/`timeout` (SIGTERM, which used to end the process with the frames left in a
    hidden temporary file and no output)."""
    out = tmp_path / "interrupted.mp4"
    # SIG_DFL: a shell's background job (a CI script's `&`) ignores SIGINT, and so would Python in the child
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_cam.py"), "--source", "sample", "--style", style_name,
                             "--output", str(out)], stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    temp = tmp_path / ".interrupted.part.mp4"
    deadline = time.monotonic() + 120
    while not temp.exists() or temp.stat().st_size < 2000:  # encoder has written packets: frames are flowing
        assert proc.poll() is None and time.monotonic() < deadline, "run ended before it could be interrupted"
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    done = re.search(rf"wrote {re.escape(str(out))} \((\d+) frames\)", err)
    assert done and f"stopped by {said}" in err, err
    frames, _ = read_video(out)
    assert 0 < len(frames) == int(done.group(1)) < 120
    assert not temp.exists()


def test_odd_sized_video_is_written_with_every_frame(carphone, style_name, tmp_path):
    """853x480-like sizes are common; yuv420p needs even sides, so the output is cropped by one pixel
    rather than refused. The input is 175x143 carphone frames, stored as yuv444p (odd sides allowed)."""
    import av

    clip = tmp_path / "odd.mp4"
    with av.open(str(carphone)) as src:
        frames = [f.to_ndarray(format="rgb24")[:143, :175] for _, f in zip(range(10), src.decode(video=0))]
    with av.open(str(clip), "w") as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 175, 143, "yuv444p"
        for i, rgb in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            vf.pts = i
            out.mux(video.encode(vf))
        out.mux(video.encode(None))
    assert read_video(clip)[0][0].shape == (143, 175, 3)
    result = tmp_path / "result.mp4"
    r = run_cli("--source", str(clip), "--style", style_name, "--output", str(result))
    assert r.returncode == 0, r.stderr
    got, fps = read_video(result)
    assert len(got) == 10 and got[0].shape == (142, 174, 3)
    assert fps == pytest.approx(30)
    assert f"wrote {result} (10 frames)" in r.stderr


def test_the_summary_says_one_frame_in_the_singular():
    from realtime.pipeline import Summary

    one = Summary(frames=1, seconds=0.1, files={"still.mp4": 1}, virtual={"/dev/video9": (1, 0)}).line()
    assert one.startswith("1 frame in 0.1 s") and "still.mp4 (1 frame)" in one and "/dev/video9 (1 frame)" in one
    assert "(2 frames, 1 dropped)" in Summary(frames=3, virtual={"/dev/video9": (2, 1)}).line()
