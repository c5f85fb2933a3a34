"""benchmarks.quality: the net/Gatys ratios it reports, and Gatys ceilings reused only for the same objective.
A tiny configuration (48 px, 2 L-BFGS steps) with a scikit-image photo standing in for the painting."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import skimage.data

from benchmarks import quality
from nets import registry
from nets.transformer_net import build
from nets.images import save_rgb


@pytest.fixture()
def styles_dir(tmp_path, style_name):
    save_rgb(tmp_path / registry.info(style_name).recipe["style_image"], skimage.data.coffee())
    return tmp_path


def test_ratios_are_net_over_gatys_and_every_row_records_its_ceiling_key(styles_dir, style_name):
    from benchmarks import temporal

    frames = temporal.sample_frames(count=4, size=(64, 48))
    r = quality.score_style(style_name, styles_dir, quality.photos(48, 1), 48, 2, frames=frames)
    (row,) = r["per_photo"].values()  # unrounded terms (the summary rounds to 4 decimals)
    for term in ("content", "style"):
        assert row["net"][term] > 0 and row["gatys"][term] > 0
        assert math.isclose(r["summary"][f"{term}_ratio"], row["net"][term] / row["gatys"][term], rel_tol=1e-3)
    for who in ("net", "gatys"):  # the style term split by layer, for both
        assert math.isclose(sum(row[who]["style_by_layer"].values()), row[who]["style"], rel_tol=1e-4)
    assert row["ceiling_key"]["photo"] == "astronaut" and row["ceiling_key"]["gatys_steps"] == 2
    assert "gatys_from" not in row
    assert 0 <= row["lattice"]["photo"] < 0.05 and row["net"]["lattice"] == row["lattice"]["net"] > 0
    assert r["summary"]["net_lattice"] == round(row["lattice"]["net"], 4)
    assert f"{r['summary']['net_lattice']:.4f} (" in quality.markdown({style_name: r})
    assert row["border"]["photo"] > 0 and row["net"]["border"] == row["border"]["net"] > 0
    assert f"| {r['summary']['net_border']:.2f} ({r['summary']['photo_border']:.2f}) |" in quality.markdown({style_name: r})
    assert r["summary"]["flicker"] == pytest.approx(r["summary"]["warp_error"] / r["summary"]["input_warp_error"], rel=2e-2)  # of rounded errors
    assert r["summary"]["noise_gain"] >= 0
    assert quality.markdown({style_name: r}).splitlines()[-1].endswith(
        f"| {r['summary']['flicker']:.2f} | {r['summary']['noise_gain']:.2f} |")


def test_a_ceiling_is_reused_only_for_the_same_painting_and_objective(styles_dir, style_name):
    images = quality.photos(48, 1)
    first = quality.score_style(style_name, styles_dir, images, 48, 2)
    again = quality.score_style(style_name, styles_dir, images, 48, 2, earlier={"lite.other": first})
    (row0,), (row1,) = first["per_photo"].values(), again["per_photo"].values()
    assert row1["gatys_from"] == "lite.other" and row1["gatys"] == row0["gatys"]
    assert np.allclose([row1["net"][k] for k in ("content", "style")], [row0["net"][k] for k in ("content", "style")])
    more_steps = quality.score_style(style_name, styles_dir, images, 48, 3, earlier={"lite.other": first})
    assert "gatys_from" not in next(iter(more_steps["per_photo"].values()))
    save_rgb(styles_dir / registry.info(style_name).recipe["style_image"], skimage.data.chelsea())  # another painting
    repainted = quality.score_style(style_name, styles_dir, images, 48, 2, earlier={"lite.other": first})
    assert "gatys_from" not in next(iter(repainted["per_photo"].values()))


def test_a_distilled_net_is_scored_against_its_teachers_objective():
    """A net distilled with no perceptual weight of its own (`--teacher`) records its teacher's objective: its
    Gatys ceiling is the teacher's (the same key), not an optimization of a style weight of 0."""
    teacher = {"style_image": "p.jpg", "style_size": 256, "content_weight": 1.0, "style_weight": 2.0, "tv_weight": 0.01,
               "content_layers": ["relu2_2"], "style_layers": ["relu1_2", "relu2_2"]}
    student = {**teacher, "content_weight": 0.0, "style_weight": 0.0, "teacher": "full.p", "teacher_weight": 100.0,
               "objective": registry.objective_of(teacher)}
    keys = [quality.ceiling_key(r, "sha", "astronaut", 512, 100, "cpu") for r in (teacher, student)]
    assert keys[0] == keys[1] and keys[1]["style_weight"] == 2.0
    assert quality.ceiling_key({**student, "objective": None}, "sha", "astronaut", 512, 100, "cpu")["style_weight"] == 0.0


def test_a_damaged_results_file_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(quality, "RESULTS", tmp_path)
    (tmp_path / "quality.json").write_text("{not json")
    assert quality.main(["--styles-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "quality.json" in err and "\n" not in err


def test_a_stopped_run_keeps_the_styles_it_scored(tmp_path, monkeypatch, capsys):
    """Scoring takes 10-14 min a style on this CPU: results are written after each one, not at the end."""
    two = registry.list_styles()[:2]
    if len(two) < 2:
        pytest.skip("needs two registered styles")
    monkeypatch.setattr(quality, "RESULTS", tmp_path)
    monkeypatch.setattr(quality, "write_manifest_metrics", lambda name, summary: None)  # not the repo's manifest
    for name in two:  # the paintings are checked before scoring
        save_rgb(tmp_path / registry.info(name).recipe["style_image"], skimage.data.coffee())
    row = {"summary": {"size": 48, "net_content": 2.0, "gatys_content": 1.0, "content_ratio": 2.0,
                       "net_style": 3.0, "gatys_style": 1.0, "style_ratio": 3.0}, "per_photo": {}}

    def score_or_stop(name, *args, **kwargs):
        if name == two[1]:
            raise KeyboardInterrupt
        return row

    monkeypatch.setattr(quality, "score_style", score_or_stop)
    assert quality.main(["--styles-dir", str(tmp_path), "--names", *two]) == 130
    assert json.loads((tmp_path / "quality.json").read_text())["styles"] == {two[0]: row}
    assert f"| {two[0]} | 48 |" in (tmp_path / "quality.md").read_text()
    assert "1 style(s) scored and kept" in capsys.readouterr().err


def test_two_runs_writing_at_once_keep_each_others_styles(tmp_path, style_name):
    """Two quality runs (one a core) each merge into the file as it is now, not as it was when they began."""
    first, second = registry.list_styles()[:2]
    row = {"summary": {"size": 48, "net_content": 1.0, "gatys_content": 0.5, "content_ratio": 2.0, "net_style": 1.0,
                       "gatys_style": 0.5, "style_ratio": 2.0}, "per_photo": {}}
    path = tmp_path / "quality.json"
    quality.write_results(path, {first: row}, {"run": 1})
    quality.write_results(path, {second: row}, {"run": 2})  # began before the first wrote: it knew no rows
    assert set(json.loads(path.read_text())["styles"]) == {first, second}
    assert first in (tmp_path / "quality.md").read_text() and second in (tmp_path / "quality.md").read_text()


def test_a_bare_painting_name_is_stored_under_its_registered_name(tmp_path, monkeypatch):
    """`--names udnie` scores lite.udnie and replaces its row; it does not add a second row named udnie."""
    folder = tmp_path / "weights"  # a registry holding one size only, so the bare name is not ambiguous
    registry.register(build("lite"), "lite", "probe", folder, painting="Probe", artist="A. Painter", year="1900",
                      recipe={"style_image": "probe.png"})
    save_rgb(tmp_path / "probe.png", skimage.data.coffee())  # the paintings are checked before scoring
    monkeypatch.setenv("STYLECAM_WEIGHTS", str(folder))
    style_name = "lite.probe"
    monkeypatch.setattr(quality, "RESULTS", tmp_path)
    monkeypatch.setattr(quality, "write_manifest_metrics", lambda name, summary: None)
    row = {"summary": {"size": 48, "net_content": 2.0, "gatys_content": 1.0, "content_ratio": 2.0,
                       "net_style": 3.0, "gatys_style": 1.0, "style_ratio": 3.0}, "per_photo": {}}
    scored = []
    monkeypatch.setattr(quality, "score_style", lambda name, *a, **k: scored.append(name) or row)
    bare = style_name.split(".", 1)[1]
    assert quality.main(["--styles-dir", str(tmp_path), "--names", bare]) == 0
    assert scored == [style_name]
    assert list(json.loads((tmp_path / "quality.json").read_text())["styles"]) == [style_name]


def test_rows_of_styles_this_weights_folder_lacks_stay(tmp_path, monkeypatch, style_name):
    """Scoring a candidate from a scratch weights folder (STYLECAM_WEIGHTS) keeps the shipped styles' rows."""
    row = {"summary": {"size": 48, "net_content": 1.0, "gatys_content": 0.5, "content_ratio": 2.0, "net_style": 1.0,
                       "gatys_style": 0.5, "style_ratio": 2.0}, "per_photo": {}}
    path = tmp_path / "quality.json"
    quality.write_results(path, {"lite.shipped_elsewhere": row}, {"run": 1})
    monkeypatch.setattr(registry, "list_styles", lambda folder=None: [style_name])  # the scratch folder's styles
    quality.write_results(path, {style_name: row}, {"run": 2})
    assert set(json.loads(path.read_text())["styles"]) == {"lite.shipped_elsewhere", style_name}
