"""The fastest CPU path for the lite net, measured and picked (issue 5, speed work).

Candidates, each on the same real frame at `cfg.cpu_path_size`: eager fp32 (NCHW), channels_last fp32,
eager with the sub-pixel upsampling rewrite (`nets.subpixel`), bf16, `torch.compile` (inductor, fp32) and
ONNX Runtime (`realtime.onnx_cpu`, what the Stylizer runs on the CPU, with the rewrite; and without it,
as the before of that change), at 1 and 2 intra-op threads, and ONNX Runtime int8 (`benchmarks.int8`).
The candidates are timed in interleaved rounds, so a burst of load from another process lands on all of
them rather than on one. A path wins only if its output matches eager fp32 (max abs difference <=
`TOLERANCE`, ~2.5 uint8 levels).
"""
from __future__ import annotations

import importlib.util
import logging
import math
import time
from typing import Callable

import torch

from benchmarks import media
from benchmarks.config import BenchConfig
from benchmarks.harness import summarize, time_calls
from benchmarks.styles import load_net
from nets.subpixel import fold_upsampling
from nets.transformer_net import build

log = logging.getLogger(__name__)
TOLERANCE = 0.01


def _clone(base: torch.nn.Module, arch: str = "lite") -> torch.nn.Module:
    net = build(arch).eval()
    net.load_state_dict(base.state_dict())
    return net


def _torch_path(net: torch.nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        with torch.inference_mode():
            return net(x)
    return run


def candidates(cfg: BenchConfig, base: torch.nn.Module, x: torch.Tensor) -> dict[str, dict]:
    """name -> {"fn", "threads", ...}; building a candidate may fail (no compiler, no onnxruntime):
    then {"skipped": reason}."""
    out: dict[str, dict] = {}
    thread_counts = sorted({1, 2} | {cfg.threads})
    for t in thread_counts:
        out[f"eager_fp32_t{t}"] = {"fn": _torch_path(_clone(base), x), "threads": t}
        net_cl = _clone(base).to(memory_format=torch.channels_last)
        out[f"channels_last_fp32_t{t}"] = {"fn": _torch_path(net_cl, x.contiguous(memory_format=torch.channels_last)),
                                           "threads": t}
        out[f"eager_subpixel_fp32_t{t}"] = {"fn": _torch_path(fold_upsampling(_clone(base)), x), "threads": t}
    out[f"bf16_t{cfg.threads}"] = {"fn": _torch_path(_clone(base).to(torch.bfloat16), x.bfloat16()),
                                   "threads": cfg.threads}
    if cfg.compile:
        try:
            compiled = torch.compile(_clone(base), dynamic=False)  # one static graph per frame size
            torch.set_num_threads(cfg.threads)
            t0 = time.perf_counter()
            _torch_path(compiled, x)()  # compiles here
            out[f"compile_fp32_t{cfg.threads}"] = {"fn": _torch_path(compiled, x), "threads": cfg.threads,
                                                    "compile_s": round(time.perf_counter() - t0, 1)}
        except Exception as exc:  # inductor needs a C++ compiler; report why, don't abort the suite
            out[f"compile_fp32_t{cfg.threads}"] = {"skipped": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    else:
        out["compile_fp32"] = {"skipped": "torch.compile disabled in this config (--no-compile or --tiny)"}
    if importlib.util.find_spec("onnxruntime") is None:
        out["onnxruntime_fp32"] = {"skipped": "onnxruntime not installed: pip install onnxruntime"}
        return out
    from realtime.onnx_cpu import OnnxRuntimeNet  # the product's own CPU runtime, not a copy of it

    for t in thread_counts:
        ort_net = OnnxRuntimeNet(_clone(base), threads=t)
        out[f"onnxruntime_fp32_t{t}"] = {"fn": (lambda n=ort_net: n(x)), "threads": t}
        plain = OnnxRuntimeNet(_clone(base), threads=t, subpixel=False)
        out[f"onnxruntime_unfolded_fp32_t{t}"] = {"fn": (lambda n=plain: n(x)), "threads": t}
    out.update(_int8_candidate(cfg, base, x))
    return out


def _int8_candidate(cfg: BenchConfig, base: torch.nn.Module, x: torch.Tensor) -> dict[str, dict]:
    from benchmarks.int8 import quantize
    from realtime.onnx_cpu import OnnxRuntimeNet, export

    name = f"onnxruntime_int8_t{cfg.threads}"
    height, width = x.shape[-2:]
    frames = [torch.from_numpy(f).permute(2, 0, 1)[None].float().div(255.0).numpy()
              for f in media.frames((width, height), 8)]
    try:
        model = quantize(export(_clone(base)), frames)
    except Exception as exc:  # needs the onnx package; report why, don't abort the suite
        return {name: {"skipped": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}}
    int8_net = OnnxRuntimeNet(_clone(base), threads=cfg.threads, model=model)
    return {name: {"fn": lambda: int8_net(x), "threads": cfg.threads}}


def sizes(cfg: BenchConfig) -> list[tuple[int, int]]:
    """The goal's size and the processing sizes its extra scales stylize at (multiples of 8)."""
    w, h = cfg.cpu_path_size
    out = [(w, h)] + [(round(w * s / 8) * 8, round(h * s / 8) * 8) for s in cfg.extra_scales]
    return list(dict.fromkeys(out))


def run(cfg: BenchConfig, rounds: int = 3) -> dict:
    """{"sizes": [{"size", "records", "winner", "rounds"}, ...]}: one race per size."""
    return {"sizes": [race(cfg, size, rounds) for size in sizes(cfg)]}


def race(cfg: BenchConfig, size: tuple[int, int], rounds: int) -> dict:
    base, label = load_net("lite")
    image = media.frames(size, 1)[0]
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255.0).contiguous()  # (1, 3, H, W)
    old_threads = torch.get_num_threads()
    with torch.inference_mode():
        ref = base(x)
    paths = candidates(cfg, base, x)
    live = {k: v for k, v in paths.items() if "fn" in v}
    samples: dict[str, list[float]] = {k: [] for k in live}
    budget_ms = 1000.0 * cfg.seconds / rounds  # per path per round
    try:
        for name, p in live.items():  # warm-up + correctness, once per path
            torch.set_num_threads(p["threads"])
            y = p["fn"]()
            t0 = time.perf_counter()
            p["fn"]()
            p["estimate_ms"] = (time.perf_counter() - t0) * 1000.0
            p["max_abs_vs_eager"] = float(f"{float((y.float() - ref).abs().max()):.3g}")
        for r in range(rounds):
            for name, p in live.items():
                torch.set_num_threads(p["threads"])
                n = max(1, min(cfg.iters, math.ceil(budget_ms / max(p["estimate_ms"], 1e-3))))
                log.info("cpu path %s round %d: %d calls", name, r, n)
                samples[name] += time_calls(p["fn"], n)
    finally:
        torch.set_num_threads(old_threads)
    records = []
    for name, p in paths.items():
        rec = {"path": name, "size": list(size), "weights": label}
        if "fn" not in p:
            records.append({**rec, **p})
            continue
        rec.update({k: v for k, v in p.items() if k not in ("fn", "estimate_ms")})
        rec["accurate"] = p["max_abs_vs_eager"] <= TOLERANCE
        records.append({**rec, **summarize(samples[name])})
    return {"size": list(size), "records": records, "winner": pick(records, cfg.threads), "rounds": rounds}


def pick(records: list[dict], threads: int) -> dict | None:
    ok = [r for r in records if r.get("accurate") and r.get("median_ms")]
    if not ok:
        return None
    best = min(ok, key=lambda r: r["median_ms"])
    eager = {r["threads"]: r["median_ms"] for r in ok if r["path"].startswith("eager_fp32")}
    return {"path": best["path"], "threads": best["threads"], "median_ms": best["median_ms"],
            "p95_ms": best["p95_ms"], "fps": best["fps"],
            "speedup_vs_eager_fp32": {f"t{t}": round(ms / best["median_ms"], 2) for t, ms in eager.items()}}
