"""`stylecam-cam` / `python run_cam.py`: parse flags, build one AppConfig, run the pipeline.

The only place that prints errors and exits non-zero: a `StyleCamError` becomes one line on stderr
and exit status 2; any other exception one line naming its type and exit status 1 (STYLECAM_DEBUG=1
re-raises it for the traceback); Ctrl-C, SIGTERM and SIGHUP stop cleanly (exit 130 if they had to interrupt hard).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from nets import adain
from nets.signals import terminate_as_interrupt
from realtime.allocator import keep_frame_buffers
from realtime.config import (BACKENDS, MAX_PIXELS, MODES, SEGMENT_MODELS, AppConfig, OutputConfig, SegmentConfig, SourceConfig,
                             StyleConfig, cpu_threads, default_style, resolve_backend, resolve_device,
                             resolve_cuda_graphs, resolve_encoder_threads, resolve_style, resolve_subpixel, style_cycle)
from realtime.display import display_problem
from realtime.errors import ConfigError, SourceError, StyleCamError

DEFAULT_FILE = "stylecam_out.mp4"


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError("size must be at least 16x16")
    if w * h > MAX_PIXELS:  # 100000x100000 asked torch for 120 GB and came back as an allocator's message
        raise argparse.ArgumentTypeError(f"size must be at most 8K (7680x4320 pixels), got {w}x{h}")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_cam.py", description="Paint a camera, a video or the sample clip "
                                "in the style of a painting; show it, send it to a virtual camera, or write a video.")
    p.add_argument("--source", default="auto", help="camera index or device path, a video or image file, or "
                   "'sample' (default: camera 0, else the bundled sample clip)")
    p.add_argument("--style", default=None, help="painting (starry_night) or registry name (lite.starry_night); "
                   "a painting picks the full net on CUDA and lite on CPU. Any painting's image file works too "
                   "(A.jpg+B.jpg mixes two, A.jpg@0.7+B.jpg@0.3 weighs them): painted by the AdaIN net, "
                   "slower than the trained styles")
    p.add_argument("--style2", default=None, help="background style in split mode (a name or a painting's file)")
    p.add_argument("--mode", choices=MODES, default="full", help="what gets painted (default: full)")
    p.add_argument("--strength", type=float, default=1.0, help="0..1 blend with the original (default 1)")
    p.add_argument("--style-alpha", type=float, default=1.0, help="a painting's file as --style: 0..1, how much of "
                   "the painting against the photo, blended in the encoder's features (default 1)")
    p.add_argument("--output", action="append", default=None, metavar="window|virtual|FILE.mp4",
                   help=f"repeatable (default: window with a display, else {DEFAULT_FILE})")
    p.add_argument("--size", type=parse_size, default=None, help="WxH; default 640x480 (camera, sample), "
                   "a file's own size")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="style-net runtime: auto (onnxruntime "
                   "on CPU when installed, else torch), torch, onnxruntime (CPU only)")
    p.add_argument("--scale", type=float, default=None, help="stylize at this fraction of the size "
                   "(default 0.5 on CPU, 1 on CUDA)")
    p.add_argument("--mask-every", type=int, default=1, help="run segmentation every N frames (default 1)")
    p.add_argument("--segment-model", choices=SEGMENT_MODELS, default="landscape")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    return p


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: samefile where both exist (links, case-folding file systems),
    else the resolved paths."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output_files(files: tuple[str, ...], source_spec: str) -> None:
    """No output file may be the input (it would be replaced by its painted version) or appear twice
    (two writers on one file leave neither video)."""
    if not files:
        return
    inputs = [source_spec] if os.path.isfile(source_spec) else []
    if source_spec in ("auto", "sample"):
        from realtime.sources import sample_path

        try:
            inputs.append(sample_path())
        except SourceError:  # no sample installed: nothing to protect; the source reports it if it is used
            pass
    for i, out in enumerate(files):
        if any(same_file(out, src) for src in inputs):
            raise ConfigError(f"Output {out} is the input video; it would be overwritten. Choose another output file.")
        if any(same_file(out, earlier) for earlier in files[:i]):
            raise ConfigError(f"Output {out} is given twice; give each output file once.")


def build_config(args: argparse.Namespace) -> AppConfig:
    notes = []
    if not 0.0 <= args.strength <= 1.0:
        raise ConfigError(f"--strength must be between 0 and 1, got {args.strength}.")
    if not 0.0 <= args.style_alpha <= 1.0:
        raise ConfigError(f"--style-alpha must be between 0 and 1, got {args.style_alpha}.")
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames must be 1 or more.")
    # Checked here too, not only by Segmenter: with --mode full and file outputs no segmenter is built,
    # and a flag must not be accepted or refused depending on other flags.
    if args.mask_every < 1:
        raise ConfigError(f"--mask-every must be 1 or more, got {args.mask_every}.")
    device, dtype, channels_last = resolve_device(args.device)
    backend = resolve_backend(args.backend, device)
    style = resolve_style(args.style, device) if args.style else default_style(device)
    style2 = resolve_style(args.style2, device) if args.style2 else None
    # CPU default 0.5: the lite net at 320x240 is ~4x cheaper than at 640x480 (measured in
    # benchmarks/); on CUDA the full net runs at full size.
    scale = args.scale if args.scale is not None else (1.0 if device.startswith("cuda") else 0.5)
    if not 0.1 <= scale <= 1.0:
        raise ConfigError(f"--scale must be between 0.1 and 1, got {scale}.")
    outputs = args.output or []
    if not outputs:
        problem = display_problem()
        outputs = [DEFAULT_FILE] if problem else ["window"]
        if problem:
            notes.append(f"No display ({problem}): writing the video to {os.path.abspath(DEFAULT_FILE)} "
                         "(choose with --output window|virtual|FILE.mp4).")
    files = tuple(o for o in outputs if o not in ("window", "virtual"))
    check_output_files(files, args.source)
    output = OutputConfig(window="window" in outputs, virtual="virtual" in outputs, files=files,
                          encoder_threads=resolve_encoder_threads(device))
    source = SourceConfig(spec=args.source, size=args.size, loop=output.live)
    if style2 and args.mode != "split" and not output.live:  # live, the `m` key can reach split mode
        notes.append(f"--style2 paints the background in split mode only; with --mode {args.mode} it is not used.")
        style2 = None
    styles = style_cycle(style, style2)
    if args.mode == "split" and not style2:
        second = styles[1] if len(styles) > 1 else styles[0]
        notes.append(f"--mode split without --style2: the background is painted in {adain.spec_name(second)}"
                     + (", as the person is" if second == style else "") + " (choose it with --style2).")
    return AppConfig(
        source=source,
        segment=SegmentConfig(model=args.segment_model, every=args.mask_every),
        style=StyleConfig(styles=styles, style2=style2, strength=args.strength,
                          style_alpha=args.style_alpha, scale=scale, device=device, dtype=dtype,
                          channels_last=channels_last,
                          threads=0 if device.startswith("cuda") else cpu_threads(), backend=backend,
                          subpixel=resolve_subpixel(device), cuda_graphs=resolve_cuda_graphs(device)),
        output=output, mode=args.mode, max_frames=args.max_frames, notes=tuple(notes))


def quiet_native_logs() -> None:
    """MediaPipe/TFLite write INFO lines to stderr through glog/absl; keep the terminal to our lines."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", message=".*MessageFactory.*")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="stylecam: %(message)s")
    quiet_native_logs()
    keep_frame_buffers()
    try:
        with terminate_as_interrupt():
            config = build_config(args)
            if args.print_config:
                print(config.to_json())
                return 0
            from realtime.pipeline import Pipeline  # imports mediapipe and torch: after the flags are checked

            pipeline = Pipeline(config)  # while frames flow, Pipeline.run makes stop signals a clean stop
            for note in config.notes + ((pipeline.note,) if pipeline.note else ()):
                print(note, file=sys.stderr)
            summary = pipeline.run()
    except StyleCamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: a bug or an error nobody named still reaches the user as one line
        if os.environ.get("STYLECAM_DEBUG") == "1":
            raise
        msg = " ".join(str(exc).split())  # native messages (cv2.error, C++ statuses) span lines
        print(f"error: unexpected {exc.__class__.__name__}: {msg} (set STYLECAM_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1
    if not summary.frames and not summary.stopped_by:
        print(f"error: {config.source.spec} gave no frame to paint; nothing was written.", file=sys.stderr)
        return 2
    print(summary.line(), file=sys.stderr)
    return 0
