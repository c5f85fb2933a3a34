"""Style quality, measured: content and style loss of each fast network's output on fixed photos,
next to a Gatys optimization of the same objective on the same photos (the quality ceiling).

Both outputs are scored by one `PerceptualCriterion` (the style's own training layers, the painting at
the recipe's style scale), so the ratios net/Gatys say how close the feed-forward net gets.
Goal (issue 4): style ratio <= 1.5, content ratio <= 1.5.

    python -m benchmarks.quality --styles-dir ../shared/data/styles [--names lite.starry_night] [--out DIR]

A run of the recorded configuration (`RECORDED`: 512 px, both photos, 100 Gatys steps, the defaults)
without --out merges its styles' rows into benchmarks/results/quality.json and quality.md and stores the
numbers in weights/manifest.json; any other run writes only under --out (a new temporary folder, printed,
without it) and leaves the manifest alone.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks import cli, machine, temporal
from nets import gatys, registry
from nets.filelock import exclusive
from nets.images import load_rgb, resize_max, to_tensor
from nets.losses import PerceptualCriterion, border_texture, stride_lattice
from nets.transformer_net import pad_to_stride
from nets.vgg import VGG16

RESULTS = Path(__file__).resolve().parent / "results"
PHOTOS = ("astronaut", "coffee")  # scikit-image's bundled photos: fixed, public, in every install of [test]
# The configuration of every row in results/quality.json and of the manifest's quality metrics (README,
# docs/styles.md): a run of another one writes elsewhere, so its rows are never mixed in with them.
RECORDED = {"size": 512, "photos": len(PHOTOS), "gatys_steps": 100}
MIN_SIZE = 64  # longer side: the photos' shorter side still goes through VGG16's four poolings


def photos(size: int, count: int) -> dict[str, np.ndarray]:
    import skimage.data

    return {name: resize_max(np.ascontiguousarray(getattr(skimage.data, name)()[..., :3]), size) for name in PHOTOS[:count]}


def ceiling_key(recipe: dict, painting_sha256: str, photo: str, size: int, gatys_steps: int, device: str) -> dict:
    """Everything a Gatys ceiling depends on: the painting's bytes, the objective of the recipe, the photo,
    the evaluation size and the optimizer's steps. Nothing of the fast net: a style's full and lite nets,
    or a net before and after fine-tuning with the same objective, share one ceiling."""
    return {"painting_sha256": painting_sha256,
            **registry.objective_of(recipe),
            "photo": photo, "size": size, "gatys_steps": gatys_steps, "device": device}


def earlier_ceiling(key: dict, earlier: dict[str, dict]) -> tuple[str, dict] | None:
    """(style name, its per-photo row) of an earlier score whose ceiling has this exact key."""
    for name, result in earlier.items():
        for row in result.get("per_photo", {}).values():
            if row.get("ceiling_key") == key:
                return name, row
    return None


@dataclass
class Objective:
    """A registered style's training objective, set up for scoring: its VGG16 layers, its painting at the
    recipe's style scale, the fp32 net, and a Gatys optimization of the same objective."""
    recipe: dict
    painting: np.ndarray  # uint8 RGB, full size
    painting_sha256: str
    vgg: VGG16
    criterion: PerceptualCriterion
    net: torch.nn.Module

    def gatys_config(self, size: int, steps: int) -> gatys.GatysConfig:
        r = registry.objective_of(self.recipe)
        return gatys.GatysConfig(size=size, style_size=r["style_size"], steps=steps, fine_steps=0, coarse_size=0,
                                 content_layers=tuple(r["content_layers"]), style_layers=tuple(r["style_layers"]),
                                 content_weight=r["content_weight"], style_weight=r["style_weight"],
                                 tv_weight=r["tv_weight"])

    def stylize(self, x: torch.Tensor) -> torch.Tensor:
        """The net on (1, 3, H, W) 0..1, padded to its stride and cropped back."""
        with torch.inference_mode():
            padded, (h, w) = pad_to_stride(x, self.net.config.stride)
            return self.net(padded)[..., :h, :w]


def objective(name: str, styles_dir: Path, device: str = "cpu") -> Objective:
    recipe = registry.info(name).recipe
    painting_file = styles_dir / recipe["style_image"]
    painting = load_rgb(painting_file)
    goal = registry.objective_of(recipe)
    content_layers, style_layers = tuple(goal["content_layers"]), tuple(goal["style_layers"])
    vgg = VGG16(tuple(dict.fromkeys(content_layers + style_layers))).to(device)
    # The painting at the scale the net was trained with: the net paints strokes of a fixed size in
    # pixels, so the painting keeps its training size whatever the evaluation size.
    criterion = PerceptualCriterion(vgg, to_tensor(resize_max(painting, goal["style_size"])).to(device), content_layers,
                                    style_layers)
    net = registry.load(name).to(device)  # fp32: quality is the network's, not a precision's
    return Objective(recipe, painting, hashlib.sha256(painting_file.read_bytes()).hexdigest(), vgg, criterion, net)


def score_style(name: str, styles_dir: Path, images: dict[str, np.ndarray], size: int, gatys_steps: int,
                device: str = "cpu", earlier: dict[str, dict] | None = None,
                frames: list[np.ndarray] | None = None) -> dict:
    """`earlier`: results of earlier runs (quality.json's "styles"); a Gatys ceiling with the same
    `ceiling_key` is taken from there instead of optimized again (10-14 min a photo on a 2-core CPU).
    `frames`: video frames to measure the net's flicker on (`benchmarks.temporal`)."""
    obj = objective(name, styles_dir, device)
    recipe, painting, criterion, vgg, net = obj.recipe, obj.painting, obj.criterion, obj.vgg, obj.net
    gcfg = obj.gatys_config(size, gatys_steps)
    rows = {}
    for photo, rgb in images.items():
        x = to_tensor(rgb).to(device)
        targets = criterion.content_targets(x)
        fast = obj.stylize(x)
        fast_terms = {k: float(v) for k, v in criterion(fast, targets).items()}
        fast_terms["style_by_layer"] = criterion.style_by_layer(fast)  # where the style gap is, layer by layer
        # A texture on the net's stride grid (a regular dot grid), next to the photo's own score (~0.002)
        fast_terms["lattice"] = float(stride_lattice(fast, net.config.stride))
        lattice = {"net": fast_terms["lattice"], "photo": float(stride_lattice(x, net.config.stride))}
        # Texture along the frame's edges against the inside, next to the photo's own (`border_texture`)
        fast_terms["border"] = float(border_texture(fast))
        border = {"net": fast_terms["border"], "photo": float(border_texture(x))}
        key = ceiling_key(recipe, obj.painting_sha256, photo, size, gatys_steps, device)
        found = earlier_ceiling(key, earlier or {})
        if found:
            source, row = found
            rows[photo] = {"net": fast_terms, "gatys": row["gatys"], "gatys_seconds": row["gatys_seconds"],
                           "ceiling_key": key, "gatys_from": row.get("gatys_from", source), "lattice": lattice,
                           "border": border}
            continue
        result = gatys.run(rgb, painting, gcfg, device=device, vgg=vgg, progress=False)
        with torch.no_grad():
            ceiling_image = to_tensor(result.image).to(device)
            ceiling = {k: float(v) for k, v in criterion(ceiling_image, targets).items()}
            ceiling["style_by_layer"] = criterion.style_by_layer(ceiling_image)
        rows[photo] = {"net": fast_terms, "gatys": ceiling, "gatys_seconds": result.metrics["seconds"],
                       "ceiling_key": key, "lattice": lattice, "border": border}
    mean = lambda who, key: float(np.mean([r[who][key] for r in rows.values()]))  # noqa: E731
    summary = {"size": size, "photos": list(images), "gatys_steps": gatys_steps, "device": device,
               "net_content": mean("net", "content"), "net_style": mean("net", "style"),
               "gatys_content": mean("gatys", "content"), "gatys_style": mean("gatys", "style"),
               "net_lattice": mean("lattice", "net"), "photo_lattice": mean("lattice", "photo"),
               "net_border": mean("border", "net"), "photo_border": mean("border", "photo")}
    summary["style_ratio"] = summary["net_style"] / max(summary["gatys_style"], 1e-9)
    summary["content_ratio"] = summary["net_content"] / max(summary["gatys_content"], 1e-9)
    if frames:
        summary |= temporal.flicker(net, frames, device) | temporal.noise_gain(net, frames, device)
    return {"summary": {k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()}, "per_photo": rows}


def write_manifest_metrics(name: str, summary: dict) -> None:
    registry.update_metrics(name, {"quality": summary})


def lattice_cell(summary: dict) -> str:
    """The net's `stride_lattice` next to the photo's (rows scored before it was measured have none)."""
    if "net_lattice" not in summary:
        return "-"
    return f"{summary['net_lattice']:.4f} ({summary['photo_lattice']:.4f})"


def border_cell(summary: dict) -> str:
    """The net's `border_texture` next to the photos' (rows scored before it was measured have none)."""
    if "net_border" not in summary:
        return "-"
    return f"{summary['net_border']:.2f} ({summary['photo_border']:.2f})"


def markdown(results: dict[str, dict]) -> str:
    lines = ["| style | size px | net content | Gatys content | content ratio | net style | Gatys style | style ratio "
             "| stride lattice (photo) | border (photo) | flicker | noise gain |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        s = r["summary"]
        flicker = f"{s['flicker']:.2f}" if "flicker" in s else "-"
        gain = f"{s['noise_gain']:.2f}" if "noise_gain" in s else "-"
        lines.append(f"| {name} | {s['size']} | {s['net_content']:.3f} | {s['gatys_content']:.3f} | {s['content_ratio']:.2f} "
                     f"| {s['net_style']:.3f} | {s['gatys_style']:.3f} | {s['style_ratio']:.2f} "
                     f"| {lattice_cell(s)} | {border_cell(s)} | {flicker} | {gain} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser(prog="python -m benchmarks.quality", description=__doc__.splitlines()[0], epilog=(
        "Only a run of the recorded configuration (--size {size} --photos {photos} --gatys-steps {gatys_steps}, "
        "the defaults; any --names, --device, --threads) without --out writes benchmarks/results/quality.* and the "
        "weights' manifest.json; any other run writes only under --out (a new temporary folder, printed, "
        "without it).".format(**RECORDED)))
    p.add_argument("--styles-dir", type=Path, required=True, help="folder holding the paintings named in the recipes")
    p.add_argument("--names", nargs="*", help="styles to score (default: all registered)")
    p.add_argument("--size", type=cli.int_range(MIN_SIZE), default=RECORDED["size"], help="longer side of the photos")
    p.add_argument("--photos", type=cli.int_range(1, len(PHOTOS)), default=RECORDED["photos"],
                   help=f"how many of {', '.join(PHOTOS)}")
    p.add_argument("--gatys-steps", type=cli.int_range(1), default=RECORDED["gatys_steps"])
    p.add_argument("--threads", type=cli.threads, help="torch intra-op threads (default: torch's)")
    p.add_argument("--device", type=cli.device, default="cpu",
                   help="auto, cpu or cuda[:N] (the Gatys ceilings at 512 px want a GPU)")
    p.add_argument("--fresh-ceilings", action="store_true",
                   help="optimize every Gatys ceiling again, even where quality.json holds one of the same objective")
    p.add_argument("--out", type=Path, help="results folder for quality.json and quality.md (see below)")
    args = p.parse_args(argv)
    results: dict[str, dict] = {}
    where: list[Path] = []
    return cli.run(lambda: score_all(args, results, where), lambda: (
        f"{len(results)} style(s) scored and kept in {where[0]}" if results else "no style scored, nothing written"))


def read_rows(path: Path, required: bool = False) -> dict[str, dict]:
    """The "styles" of a quality results file ({} where there is none, unless `required`)."""
    if not path.is_file() and not required:
        return {}
    try:
        return json.loads(path.read_text())["styles"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise cli.BenchError(f"{path} is not a quality results file ({type(exc).__name__}: {exc}); "
                             "move it away to start a new one.") from exc


def score_all(args, results: dict[str, dict], where: list[Path]) -> int:
    """Every check first (device, names, results file, paintings, output folder), then one style at a time."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = cli.resolve_device(args.device)
    recorded = {"size": args.size, "photos": args.photos, "gatys_steps": args.gatys_steps} == RECORDED
    official = recorded and args.out is None
    # Registered names ("lite.udnie" for "udnie"), so a bare name replaces its row instead of adding one
    names = [registry.info(n).name for n in args.names] if args.names else registry.list_styles()
    committed = read_rows(RESULTS / "quality.json")
    cli.check_paintings(args.styles_dir, names)
    out = cli.writable_dir(RESULTS if official else args.out or cli.scratch_dir("quality"))
    path = out / "quality.json"
    # Gatys ceilings of the same objective are reused from the committed rows and from this folder's own
    earlier = committed if official else committed | read_rows(path)
    where.append(path)
    manifest = registry.weights_dir() / "manifest.json"
    if not official:
        why = "--out was given" if recorded else "not the recorded configuration"
        print(f"{why}: writing {path} only; {manifest} is not updated", flush=True)
    meta = {"cpu": machine.cpu_model(), "threads": torch.get_num_threads(), "versions": machine.versions(),
            "git": machine.git_revision(), "other_load": machine.other_load()}
    images = photos(args.size, args.photos)
    frames = temporal.sample_frames()
    for i, name in enumerate(names, 1):
        print(f"scoring {name} ({i}/{len(names)}) ...", flush=True)
        results[name] = score_style(name, args.styles_dir, images, args.size, args.gatys_steps, device,
                                    earlier={} if args.fresh_ceilings else earlier, frames=frames)
        if official:
            write_manifest_metrics(name, results[name]["summary"])
        write_results(path, results, meta)  # after each style: a stopped run keeps what it scored
    print(markdown(results))
    if not official:
        print(f"results in {path} (and quality.md beside it); {manifest} was not updated")
    return 0


def write_results(path: Path, results: dict[str, dict], meta: dict) -> None:
    """Merge this run's styles into the results file, read again under a lock: a style scored now replaces
    its row, the others stay (styles trained at different times, and those another quality run, say on the
    other core, wrote meanwhile)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path.parent / ".quality.lock"):
        current = json.loads(path.read_text())["styles"] if path.is_file() else {}
        # Every row stays, registered in this weights folder or not: a candidate net scored from a scratch
        # folder (STYLECAM_WEIGHTS) must not drop the shipped styles' rows and their Gatys ceilings.
        merged = dict(sorted((current | results).items()))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"meta": meta, "styles": merged}, indent=2) + "\n")
        tmp.replace(path)
        (path.parent / "quality.md").write_text(markdown(merged))


if __name__ == "__main__":
    raise SystemExit(main())
