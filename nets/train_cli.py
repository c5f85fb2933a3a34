"""`stylecam train`: its flags, made from `TrainConfig`'s fields and defaults, and the command."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, fields
from pathlib import Path

from nets import registry
from nets.args import CLIError, layer_names, positive, resolve_device, style_name
from nets.train import CREDITS, PRECISIONS, TrainConfig, train
from nets.transformer_net import ARCHS
from nets.vgg import LAYER_NAMES

TRAIN_FLAGS = ("arch", "size", "style_size", "batch", "steps", "lr", "warmup", "content_weight", "style_weight", "tv_weight",
               "shift_weight", "noise_weight", "val_count", "val_size", "val_every", "checkpoint_every", "out_dir", "weights_dir", "seed",
               "init_from", "max_seconds", "precision", "teacher", "teacher_weight")
TRAIN_CHOICES = {"precision": PRECISIONS}
TRAIN_TYPES = dict.fromkeys(("batch", "steps", "val_count", "val_every", "checkpoint_every"), positive)


TRAIN_HELP = {
    "shift_weight": "weight of the loss against textures locked to the net's stride grid (nets.losses.shift_loss); ",
    "noise_weight": "weight of the loss against strokes that change with pixel noise, the full nets' flicker "
                    "(nets.losses.noise_loss); ",
    "warmup": "steps over which this run's learning rate rises to --lr (for short --init-from runs: a fresh "
              "Adam's first steps set the trained weights back, docs/styles.md); ",
    "init_from": "without a checkpoint, start from this registered style's weights (e.g. lite.udnie) with a fresh "
                 "optimizer; --steps is the total, its steps included; ",
    "precision": "of the training step's forward passes (VGG16 above all): auto = bf16 where the device computes it "
                 "in hardware (CUDA; a CPU with AVX512-BF16 or AMX), else fp32; ",
    "teacher": "distil: a registered net of the same painting (e.g. full.NAME) whose output this net learns to "
               "match; with --content-weight 0 --style-weight 0 a step skips VGG16 (~4x faster); ",
    "teacher_weight": "weight of the mean squared difference from --teacher's output; ",
    "max_seconds": "stop after so many seconds of training and export the steps reached (a time-boxed GPU call); "
                   "0 = no limit; ",
}


def cmd_train(args) -> None:
    if not Path(args.content).is_dir():
        what = "is a file, not a folder" if Path(args.content).exists() else "does not exist"
        raise CLIError(f"Content folder {args.content} {what}; --content needs a folder of photos.")
    device = resolve_device(args.device)
    chosen = {k: getattr(args, k) for k in TRAIN_FLAGS}
    if args.content_layers:
        chosen["content_layers"] = args.content_layers
    if args.style_layers:
        chosen["style_layers"] = args.style_layers
    for flag in ("shift_weight", "noise_weight", "teacher_weight", "max_seconds", "warmup"):
        if getattr(args, flag) < 0:
            raise CLIError(f"--{flag.replace('_', '-')} {getattr(args, flag):g} is negative; use 0 (off) or more.")
    if bool(args.teacher) != bool(args.teacher_weight):
        raise CLIError("--teacher and --teacher-weight go together: name the net to match and give its weight above 0.")
    if not (args.content_weight or args.style_weight or args.teacher_weight):
        raise CLIError("--content-weight, --style-weight and --teacher-weight are all 0: the net would learn nothing.")
    stride = ARCHS[args.arch].stride  # crops go through the net whole: sides must be multiples of its stride
    for flag, side in (("--size", args.size), ("--val-size", args.val_size)):
        if side % stride or side < 2 * stride:
            raise CLIError(f"{flag} {side} does not fit the {args.arch} net: use a multiple of {stride}, at least {2 * stride}.")
    unknown = [n for n in chosen.get("content_layers", ()) + chosen.get("style_layers", ()) if n not in LAYER_NAMES]
    if unknown:
        raise CLIError(f"Unknown VGG16 layer(s) {', '.join(unknown)}; e.g. relu1_2, relu2_2, relu3_3, relu4_3, conv4_2.")
    credits = {k: getattr(args, k) for k in CREDITS}
    cfg = TrainConfig(style_image=args.style_image, content_dir=args.content, style_name=args.name,
                      device=str(device), **chosen, **credits)
    if args.print_config:
        print(json.dumps(asdict(cfg), indent=2))
    result = train(cfg, resume=args.resume, progress=not args.no_progress, export=not args.no_export,
                   replace=args.replace)
    val = result["val"]
    speed = (f"{result['images_per_s']} images/s" if result["new_steps"]
             else "all of them in the checkpoint already, none trained now")
    if result["out_of_time"]:
        speed += f" (stopped by --max-seconds {args.max_seconds:g}, {cfg.steps} asked for)"
    line = (f"trained {cfg.arch}.{cfg.name}: {result['steps']} steps, {speed}, "
            f"val content {val['content']:.4f}, val style {val['style']:.4f}")
    if "exported" in result:
        folder = Path(cfg.weights_dir) if cfg.weights_dir else registry.weights_dir()
        line += f"; registered {result['exported']['name']} in {folder / result['exported']['file']}"
    print(line)


def _default(name: str):
    return next(f.default for f in fields(TrainConfig) if f.name == name)


def add_parser(sub, compute: argparse.ArgumentParser) -> None:
    p = sub.add_parser("train", help="train a feed-forward style network on a folder of photos", parents=[compute])
    p.add_argument("style_image")
    p.add_argument("--content", required=True, help="folder of content photos")
    p.add_argument("--name", type=style_name, default="", help="style name (default: the style image's file stem)")
    p.add_argument("--arch", choices=sorted(ARCHS), default=_default("arch"))
    for flag in TRAIN_FLAGS[1:]:
        value = _default(flag)
        hint = "the registry's folder (weights/, or $STYLECAM_WEIGHTS)" if flag == "weights_dir" else repr(value)
        p.add_argument("--" + flag.replace("_", "-"), type=TRAIN_TYPES.get(flag, type(value)), default=value,
                       choices=TRAIN_CHOICES.get(flag),
                       help=TRAIN_HELP.get(flag, "") + f"default {hint}")
    p.add_argument("--content-layers", type=layer_names, help=f"default {','.join(_default('content_layers'))}")
    p.add_argument("--style-layers", type=layer_names, help=f"default {','.join(_default('style_layers'))}")
    for flag in CREDITS:  # for paintings that weights/paintings.json lacks (or credits wrongly)
        p.add_argument("--" + flag, default="", help=f"the {flag} credited in the manifest; overrides weights/paintings.json")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True, help="continue from the checkpoint")
    p.add_argument("--no-export", action="store_true", help="do not register the weights at the end")
    p.add_argument("--replace", action="store_true", help="replace a style of the same name that another run "
                   "registered in the weights folder (rerunning a command that resumes its checkpoint needs no flag)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--print-config", action="store_true", help="print the resolved settings first")
    p.set_defaults(func=cmd_train)
