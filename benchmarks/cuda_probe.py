"""Where a style net's time goes on CUDA, and which form of it to run: measured, not guessed.

On one real style at one size (1920x1080 by default) it times each net (full, lite) in each form (plain
or sub-pixel upsampling; `--padded-edges` adds the full net with its two 3-channel 9x9 convolutions
zero-padded to 8 channels), dtype (fp16, fp32) and layout (NCHW, NHWC), eager and replayed as a CUDA
graph by the Stylizer's own `GraphedNet`, and profiles the full net's top ops in fp16 (section `nets`);
checks every registered style's fp16 output on CUDA against fp32 on the CPU (`parity`); and times the
product's `Stylizer` with and without CUDA graphs (`stylizer`). Torch alone: no packages to carry.
The first H200 runs are results/gpu-h200-probe-before.md (PyTorch's instance norm) and gpu-h200-probe.md.

    python -m benchmarks.cuda_probe --out $OUT/probe.json     # on the GPU machine, ~1 minute
    python -m benchmarks.cuda_probe --out probe.json --render "title"   # here: probe.md beside it

Each measurement prints one JSON line as it finishes, so a time-boxed call keeps what it measured.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.harness import measure
from nets import registry
from nets.subpixel import fold_upsampling
from nets.transformer_net import TransformerNet
from realtime.cuda_graph import GraphedNet

DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


class PaddedInputConv(nn.Module):
    """`conv` on its input with zero channels appended up to `to`: the same output, tensor-core friendly."""

    def __init__(self, conv: nn.Conv2d, to: int = 8):
        super().__init__()
        cout, cin, kh, kw = conv.weight.shape
        self.extra = to - cin
        self.conv = nn.Conv2d(to, cout, (kh, kw), conv.stride, conv.padding, bias=conv.bias is not None)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, :cin] = conv.weight
            if conv.bias is not None:
                self.conv.bias.copy_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zeros = x.new_zeros(x.shape[0], self.extra, *x.shape[2:])
        return self.conv(torch.cat([x, zeros], 1).contiguous(memory_format=_layout(x)))


class PaddedOutputConv(nn.Module):
    """`conv` computing `to` output channels (the extra ones zero) and keeping the real ones."""

    def __init__(self, conv: nn.Conv2d, to: int = 8):
        super().__init__()
        cout, cin, kh, kw = conv.weight.shape
        self.cout = cout
        self.conv = nn.Conv2d(cin, to, (kh, kw), conv.stride, conv.padding, bias=conv.bias is not None)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:cout] = conv.weight
            if conv.bias is not None:
                self.conv.bias.zero_()
                self.conv.bias[:cout] = conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)[:, :self.cout]


def _layout(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1 \
        else torch.contiguous_format


def pad_edge_convs(net: TransformerNet) -> TransformerNet:
    """A copy whose 3-channel convolutions (the stem's input, the last layer's output) are padded to 8."""
    out = copy.deepcopy(net)
    out.conv1[1] = PaddedInputConv(out.conv1[1])
    out.deconv3.conv[1] = PaddedOutputConv(out.deconv3.conv[1])
    return out


def top_kernels(fn, n: int = 10) -> dict:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
    events = prof.key_averages(group_by_input_shape=True)

    def top(keep) -> list[dict]:
        rows = sorted((e for e in events if keep(e) and e.self_device_time_total > 0),
                      key=lambda e: -e.self_device_time_total)[:n]
        return [{"name": e.key[:90], "shapes": str(e.input_shapes)[:120] if e.input_shapes else "",
                 "ms_per_forward": round(e.self_device_time_total / 5 / 1000, 3), "calls_per_forward": e.count / 5}
                for e in rows]

    return {"ops": top(lambda e: e.key.startswith("aten::")), "kernels": top(lambda e: not e.key.startswith("aten::"))}


def time_nets(args, frame: torch.Tensor, record) -> None:
    """Each net x form x dtype x layout, eager and replayed as a CUDA graph; the full net profiled."""
    for arch in ("full", "lite"):
        plain = registry.load(f"{arch}.{args.style}").eval()
        forms = {"plain": plain, "subpixel": fold_upsampling(plain)}
        if args.padded_edges and arch == "full":
            forms["subpixel+padded-edges"] = pad_edge_convs(forms["subpixel"])
        for form, net0 in forms.items():
            for dt in ("fp16", "fp32"):
                for layout in ("nchw", "nhwc"):
                    fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
                    net = copy.deepcopy(net0).to("cuda", DTYPES[dt], memory_format=fmt)
                    x = frame.to("cuda", DTYPES[dt]).contiguous(memory_format=fmt)
                    key = {"net": arch, "form": form, "dtype": dt, "layout": layout}
                    stats = measure(lambda: net(x), device="cuda", warmup=3, iters=30, min_iters=5, seconds=args.seconds)
                    record({**key, "graph": False, "median_ms": stats["median_ms"], "p95_ms": stats["p95_ms"]})
                    try:
                        graphed = GraphedNet(net)
                        graphed(x)  # captures
                        stats = measure(lambda: graphed(x), device="cuda", warmup=3, iters=30, min_iters=5, seconds=args.seconds)
                        record({**key, "graph": True, "median_ms": stats["median_ms"], "p95_ms": stats["p95_ms"]})
                    except (RuntimeError, ValueError) as exc:  # a capture CUDA refuses; no CUDA device
                        record({**key, "graph": True, "error": str(exc).splitlines()[0][:200]})
                    if arch == "full" and form == "subpixel" and dt == "fp16":
                        try:
                            record({**key, "profile": top_kernels(lambda: net(x))})
                        except Exception as exc:  # noqa: BLE001 - the profiler is a nice-to-have
                            record({**key, "profile_error": f"{type(exc).__name__}: {exc}"[:200]})
                    del net, x


def parity(size: tuple[int, int], record) -> None:
    """Every registered style in fp16 on CUDA (the product's instance norm, sub-pixel layers, both layouts)
    against fp32 on the CPU (PyTorch's own instance norm), on a real photo: uint8 levels apart."""
    from skimage import data

    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float().div(255)
    x = F.interpolate(photo, size=(size[1], size[0]), mode="bilinear", align_corners=False)
    for name in registry.list_styles():
        net = registry.load(name).eval()
        ref = (net(x).clamp(0, 1) * 255).round()
        fast = fold_upsampling(net)
        for layout in ("nchw", "nhwc"):
            fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
            gpu = copy.deepcopy(fast).to("cuda", torch.float16, memory_format=fmt)
            y = gpu(x.to("cuda", torch.float16).contiguous(memory_format=fmt)).float().cpu()
            diff = ((y.clamp(0, 1) * 255).round() - ref).abs()
            record({"parity": name, "layout": layout, "size": list(size), "max_uint8": int(diff.max()),
                    "mean_uint8": round(float(diff.mean()), 4)})


def stylizer(size: tuple[int, int], style: str, seconds: float, record) -> None:
    """The product's Stylizer on CUDA with and without CUDA graphs: same picture, time per frame."""
    import numpy as np

    from realtime.config import StyleConfig, resolve_device, resolve_subpixel
    from realtime.stylize import Stylizer

    device, dtype, channels_last = resolve_device("cuda")
    image = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    for arch in ("lite", "full"):
        outs = {}
        for graphs in (False, True):
            st = Stylizer(config=StyleConfig(styles=(f"{arch}.{style}",), device=device, dtype=dtype,
                                             channels_last=channels_last, subpixel=resolve_subpixel(device),
                                             cuda_graphs=graphs))
            st.warmup(size)
            x = st.to_tensor(image)
            stats = measure(lambda: st.stylize(x), device="cuda", warmup=3, iters=30, min_iters=5, seconds=seconds)
            outs[graphs] = st.to_image(st.stylize(x)).astype(np.int16)
            record({"stylizer": f"{arch}.{style}", "cuda_graphs": graphs, "channels_last": channels_last,
                    "median_ms": stats["median_ms"], "p95_ms": stats["p95_ms"]})
            st.close()
        record({"stylizer": f"{arch}.{style}", "graph_vs_eager_max_uint8": int(np.abs(outs[True] - outs[False]).max())})


def markdown(probe: dict, title: str) -> str:
    """The probe's JSON as tables: net timings (eager and CUDA graph), top ops, parity, the Stylizer."""
    rows = probe["rows"]
    lines = [f"# {title}", "", f"- {probe['device']}, torch {probe['torch']}, cuDNN {probe['cudnn']}, "
             f"frame {probe['size'][0]}x{probe['size'][1]}" + (f", git {probe['git'][:10]}" if probe.get("git") else ""),
             *([f"- {probe['note']}"] if probe.get("note") else []), "",
             "| net | form | dtype | layout | eager ms | CUDA graph ms | FPS (graph) |", "|---|---|---|---|---|---|---|"]
    timed = {}
    for r in rows:
        if "median_ms" in r and "graph" in r and not r.get("compiled"):
            timed.setdefault((r["net"], r["form"], r["dtype"], r["layout"]), {})[r["graph"]] = r["median_ms"]
    for (net, form, dt, layout), t in timed.items():
        g = t.get(True)
        lines.append(f"| {net} | {form} | {dt} | {layout} | {t.get(False, '-')} | {g or '-'} | "
                     f"{round(1000 / g, 1) if g else '-'} |")
    for r in rows:
        if r.get("compiled"):
            lines += ["", f"torch.compile ({r.get('form')} {r.get('dtype')} {r.get('layout')}): "
                      + (f"{r['median_ms']} ms after {r['compile_s']} s of compiling, max abs vs eager "
                         f"{r['max_abs_vs_eager']:.2g}" if "median_ms" in r else r.get("error", ""))]
    for r in rows:
        if "profile" in r:
            lines += ["", f"Top ops, full net {r['form']} {r['dtype']} {r['layout']} (CUDA ms per forward):", "",
                      "| op | input shapes | ms | calls |", "|---|---|---|---|"]
            ops = r["profile"]["ops"] if isinstance(r["profile"], dict) else r["profile"]
            lines += [f"| {o['name']} | `{o['shapes'][:70]}` | {o.get('ms_per_forward', o.get('cuda_ms_per_call'))} | "
                      f"{o.get('calls_per_forward', o.get('calls'))} |" for o in ops[:8]]
    par = [r for r in rows if "parity" in r]
    if par:
        lines += ["", f"fp16 on CUDA against fp32 on the CPU, {len({r['parity'] for r in par})} styles, "
                  f"{par[0]['size'][0]}x{par[0]['size'][1]} photo (uint8 levels):", "",
                  "| layout | worst max | worst mean |", "|---|---|---|"]
        for layout in sorted({r["layout"] for r in par}):
            sel = [r for r in par if r["layout"] == layout]
            lines.append(f"| {layout} | {max(r['max_uint8'] for r in sel)} | {max(r['mean_uint8'] for r in sel)} |")
    sty = [r for r in rows if "stylizer" in r and "median_ms" in r]
    if sty:
        lines += ["", "The product's `Stylizer.stylize` (pad, net, crop) on the same frame:", "",
                  "| style | CUDA graphs | channels_last | median ms | p95 ms |", "|---|---|---|---|---|"]
        lines += [f"| {r['stylizer']} | {r['cuda_graphs']} | {r['channels_last']} | {r['median_ms']} | {r['p95_ms']} |"
                  for r in sty]
        same = [r for r in rows if "graph_vs_eager_max_uint8" in r]
        lines += [""] + [f"- {r['stylizer']}: graph against eager output, max {r['graph_vs_eager_max_uint8']} uint8 levels"
                         for r in same]
    errors = [r for r in rows if "error" in r and not r.get("compiled")]
    lines += [""] + [f"- error: {r}" for r in errors]
    return "\n".join(lines).rstrip() + "\n"


@torch.inference_mode()
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cuda_probe", description=__doc__.splitlines()[0])
    p.add_argument("--style", default="composition_vii")
    p.add_argument("--size", default="1920x1080")
    p.add_argument("--seconds", type=float, default=0.5)
    p.add_argument("--padded-edges", action="store_true", help="also time the channel-padded 9x9 convolutions")
    p.add_argument("--section", action="append", choices=("nets", "parity", "stylizer"),
                   help="repeatable (default: all three)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--render", metavar="TITLE", help="only write OUT's tables as OUT with .md, under this title")
    args = p.parse_args(argv)
    if args.render:
        md = args.out.with_suffix(".md")
        md.write_text(markdown(json.loads(args.out.read_text()), args.render))
        print(md)
        return 0
    if not torch.cuda.is_available():
        print("error: the probe needs CUDA.")
        return 1
    torch.backends.cudnn.benchmark = True
    w, h = (int(v) for v in args.size.split("x"))
    t0, rows = time.time(), []
    frame = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))

    def record(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                                        "cudnn": torch.backends.cudnn.version(), "size": [w, h],
                                        "git": os.environ.get("STYLECAM_GIT_REVISION"), "rows": rows}, indent=1))

    sections = {"nets": lambda: time_nets(args, frame, record), "parity": lambda: parity((640, 480), record),
                "stylizer": lambda: stylizer((w, h), args.style, args.seconds, record)}
    for name in args.section or sections:
        try:
            sections[name]()
        except Exception as exc:  # noqa: BLE001 - one section's failure is a result; the others still run
            record({"section": name, "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]})
    print(f"probe done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
