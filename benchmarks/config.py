"""What a benchmark run measures: one frozen config, built by `__main__` from flags, passed down."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

RESOLUTIONS = ((320, 240), (640, 480), (1280, 720), (1920, 1080))  # (width, height)
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SECTIONS = ("network", "precision", "baselines", "cpu_paths", "pipeline")


@dataclass(frozen=True)
class BenchConfig:
    resolutions: tuple[tuple[int, int], ...] = RESOLUTIONS
    devices: tuple[str, ...] = ("cpu", "cuda")  # cuda is skipped (and recorded as skipped) without CUDA
    nets: tuple[str, ...] = ("lite", "full")
    dtypes: tuple[str, ...] = ("fp32", "bf16", "fp16")  # CPU runs fp32 + bf16; CUDA all three
    sections: tuple[str, ...] = SECTIONS
    # torch (and onnxruntime) intra-op threads on the CPU, for ours and the baselines alike. 1, not 2: on
    # this 2-core machine shared with a training job, a 2-thread forward waits at every op's barrier
    # for a preempted thread (lite 160x128: median 130-250 ms, p95 800 ms with 2 threads; 26 / 30 ms
    # with 1), and in the pipeline MediaPipe runs on the other core. `cpu_paths` measures 1 and 2; on
    # the quiet machine, 2 threads won (results/cpu-amd-epyc-2c-threads2.md: `--threads 2`).
    threads: int = 1
    warmup: int = 2  # untimed calls before measuring (allocator, oneDNN primitive cache, cuDNN autotune)
    iters: int = 20  # timed calls per measurement at most ...
    min_iters: int = 3  # ... and at least, even when `seconds` is used up
    seconds: float = 3.0  # time budget per measurement: slow configs stop after `min_iters`
    # The full net is ~47 GMAC at 640x480: on the CPU it runs only up to this many pixels.
    full_cpu_max_pixels: int = 320 * 240
    # CPU bf16/fp16 convolutions the CPU emulates (bf16 without AVX512-BF16/AMX, ~30x slower than fp32 on
    # an AVX2 EPYC) run only up to this many pixels; native ones (benchmarks.network.native_cpu_dtypes) at all.
    cpu_lowp_max_pixels: int = 320 * 240
    cpu_path_size: tuple[int, int] = (640, 480)  # the goal's size
    # also raced at the processing sizes of `extra_scales` (e.g. 320x240 = 640x480 at scale 0.5)
    compile: bool = True  # include torch.compile in the CPU path race (compiles for ~1 min on 2 cores)
    pipeline_frames: int = 60  # frames per file-mode run
    live_fps: tuple[float, ...] = (30.0, 60.0)
    live_seconds: float = 4.0  # per live run, after warm-up
    modes: tuple[str, ...] = ("full", "background")
    # Processing scales tried at `cpu_path_size` besides 1.0 (the Stylizer stylizes a downscaled frame
    # and upsamples; the output keeps the full size). Issue 5 lists processing scale as speed work.
    extra_scales: tuple[float, ...] = (0.5,)
    out_dir: Path = RESULTS_DIR
    name: str = ""  # results file stem; empty = derived from the machine
    tiny: bool = False  # the CI-sized run (results named tiny-<machine>)
    note: str = ""  # free text stored with the results (e.g. "CPU shared with a training job")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        return d

    def with_(self, **changes) -> "BenchConfig":
        return replace(self, **changes)


def tiny(out_dir: Path, **changes) -> BenchConfig:
    """CI size: one small resolution, lite net, fp32 + one low-precision dtype, a few frames per
    measurement; every section still runs, so the JSON has its full shape."""
    base = BenchConfig(resolutions=((160, 128),), nets=("lite",), dtypes=("fp32", "bf16", "fp16"),
                       warmup=1, iters=2, min_iters=2, seconds=0.5, cpu_path_size=(160, 128),
                       cpu_lowp_max_pixels=160 * 128, full_cpu_max_pixels=160 * 128, compile=False,
                       pipeline_frames=4, live_fps=(30.0,), extra_scales=(), live_seconds=0.5, out_dir=out_dir,
                       tiny=True)
    return base.with_(**changes)
