"""Why the full net runs slower in fp16 than in fp32 on CUDA at 1080p, and what would make it faster.

The first H200 run (results/gpu-h200.md) timed the full net at 1920x1080: fp32 contiguous 15.1 ms,
fp16 channels_last 23.5 ms, CUDA graphs changing nothing. This probe times, on one real style at one
size, each combination of dtype (fp16, fp32), memory layout (NCHW, NHWC), CUDA-graph replay, and the two
3-channel 9x9 convolutions (stem in, last layer out) with their channels zero-padded to 8 (same output),
then profiles the slowest and fastest forms by CUDA kernel. Torch alone: no packages to carry.

    python -m benchmarks.cuda_probe --out $OUT/probe.json     # on the GPU machine, ~1-2 minutes

Each measurement prints one JSON line as it finishes, so a time-boxed call keeps what it measured.
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.harness import measure
from nets import registry
from nets.subpixel import fold_upsampling
from nets.transformer_net import TransformerNet

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


def graph_of(fn, x: torch.Tensor):
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn(x)
    return graph.replay


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


@torch.inference_mode()
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cuda_probe", description=__doc__.splitlines()[0])
    p.add_argument("--style", default="composition_vii")
    p.add_argument("--size", default="1920x1080")
    p.add_argument("--seconds", type=float, default=0.5)
    p.add_argument("--compile-after", type=float, default=90.0,
                   help="try torch.compile only if the probe has run less than this many seconds")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: the probe needs CUDA.")
        return 1
    torch.backends.cudnn.benchmark = True
    w, h = (int(v) for v in args.size.split("x"))
    t0, rows, full_forms = time.time(), [], {}
    frame = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))

    def record(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                                        "cudnn": torch.backends.cudnn.version(), "size": [w, h], "rows": rows}, indent=1))

    for arch in ("full", "lite"):
        base = fold_upsampling(registry.load(f"{arch}.{args.style}")).eval()
        forms = {"subpixel": base, **({"subpixel+padded-edges": pad_edge_convs(base)} if arch == "full" else {})}
        full_forms = forms if arch == "full" else full_forms
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
                        replay = graph_of(net, x)
                        stats = measure(replay, device="cuda", warmup=3, iters=30, min_iters=5, seconds=args.seconds)
                        record({**key, "graph": True, "median_ms": stats["median_ms"], "p95_ms": stats["p95_ms"]})
                    except RuntimeError as exc:
                        record({**key, "graph": True, "error": str(exc).splitlines()[0][:200]})
                    if arch == "full" and form == "subpixel":
                        try:
                            record({**key, "profile": top_kernels(lambda: net(x))})
                        except Exception as exc:  # noqa: BLE001 - the profiler is a nice-to-have
                            record({**key, "profile_error": f"{type(exc).__name__}: {exc}"[:200]})
                    del net, x
    full = [r for r in rows if r["net"] == "full" and r.get("median_ms") and not r["graph"]]
    best = min(full, key=lambda r: r["median_ms"])
    if time.time() - t0 < args.compile_after:
        fmt = torch.channels_last if best["layout"] == "nhwc" else torch.contiguous_format
        net0 = full_forms[best["form"]]
        net = copy.deepcopy(net0).to("cuda", DTYPES[best["dtype"]], memory_format=fmt).eval()
        x = frame.to("cuda", DTYPES[best["dtype"]]).contiguous(memory_format=fmt)
        c0 = time.time()
        try:
            compiled = torch.compile(net)
            compiled(x)
            torch.cuda.synchronize()
            compile_s = round(time.time() - c0, 1)
            stats = measure(lambda: compiled(x), device="cuda", warmup=3, iters=30, min_iters=5, seconds=args.seconds)
            err = float((compiled(x).float() - net(x).float()).abs().max())
            record({**{k: best[k] for k in ("net", "form", "dtype", "layout")}, "graph": False, "compiled": True,
                    "compile_s": compile_s, "median_ms": stats["median_ms"], "p95_ms": stats["p95_ms"], "max_abs_vs_eager": err})
        except Exception as exc:  # noqa: BLE001 - a compiler failure is a result here
            record({"net": "full", "compiled": True, "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:200]})
    print(f"probe done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
