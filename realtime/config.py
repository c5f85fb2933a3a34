"""Typed configuration: frozen dataclasses per area inside one `AppConfig`, built once by `realtime.cli`
and passed down into constructors. Device, dtype and the style architecture are resolved here, once.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from nets import adain, registry
from realtime.errors import ConfigError

MODES = ("full", "background", "person", "split")
SEGMENT_MODELS = ("general", "landscape")
DEFAULT_SIZE = (640, 480)  # camera and sample size when --size is not given
MAX_PIXELS = 7680 * 4320  # 8K: the largest frame --size asks for or a still image is painted at


@dataclass(frozen=True)
class SourceConfig:
    spec: str = "auto"  # "auto" (camera 0, else the sample), "sample", a camera index or device path, a file
    size: tuple[int, int] | None = None  # (width, height); None: camera/sample 640x480, files keep theirs
    fps: float = 30.0  # requested from cameras; the sample's pace when live
    loop: bool = False  # sample/file start again at the end (live outputs)
    reopen_attempts: int = 3  # a lost camera is reopened this many times, then the stream ends


@dataclass(frozen=True)
class SegmentConfig:
    model: str = "landscape"  # MediaPipe selfie model: "general" (256x256) or "landscape" (256x144, faster)
    every: int = 1  # run the network every N frames; between, the last mask is re-refined on the new frame
    smoothing: float = 0.6  # weight of the previous mask where old and new agree (0 = no smoothing)
    refine: bool = True  # guided-filter edge refinement with the frame as guide
    feather: int = 7  # Gaussian feather kernel in pixels of the frame (odd; 0 = off)
    # the mask (MediaPipe's input, smoothing, refinement, feather) is computed at half the frame's size,
    # its longest side at most this, and upscaled back; 0 = always at the frame's own size. See
    # realtime.segment.Segmenter.work_size.
    work_side: int = 960


@dataclass(frozen=True)
class StyleConfig:
    styles: tuple[str, ...]  # registry names, all preloaded; styles[0] is active at start
    style2: str | None = None  # background style of `split` mode (one of `styles`)
    strength: float = 1.0  # 1 = fully stylized, 0 = the original frame
    style_alpha: float = 1.0  # a painting's file as a style (nets.adain): the content-style trade-off
    scale: float = 1.0  # stylize at this fraction of the frame size, then upsample
    device: str = "cpu"
    dtype: str = "float32"  # "float16" on CUDA
    channels_last: bool = False
    threads: int = 0  # CPU intra-op threads (torch or ONNX Runtime); 0 = the library's default
    backend: str = "torch"  # "torch", or "onnxruntime" (CPU, fp32): see resolve_backend
    subpixel: bool = False  # run the upsampling layers in their sub-pixel form: see resolve_subpixel
    cuda_graphs: bool = False  # replay each net as a CUDA graph per frame size: see resolve_cuda_graphs


@dataclass(frozen=True)
class OutputConfig:
    window: bool = False
    virtual: bool = False
    files: tuple[str, ...] = ()
    virtual_device: str | None = None
    virtual_backend: str | None = None  # pyvirtualcam backend name (tests register a capturing one)
    snapshot_dir: str = "."
    encoder_threads: int = 0  # libx264 threads of video files; 0 = x264's own choice: see resolve_encoder_threads

    @property
    def live(self) -> bool:
        """Window or virtual camera: paced, latest-frame; files only: ordered, nothing dropped."""
        return self.window or self.virtual


@dataclass(frozen=True)
class AppConfig:
    source: SourceConfig
    segment: SegmentConfig
    style: StyleConfig
    output: OutputConfig
    mode: str = "full"
    max_frames: int | None = None
    notes: tuple[str, ...] = field(default=())  # lines the CLI prints once (fallbacks it chose)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def resolve_device(name: str) -> tuple[str, str, bool]:
    """"auto" | "cpu" | "cuda[:N]" -> (device, dtype, channels_last). CUDA runs fp16 in the default
    (NCHW) layout: measured on an H200 at 1920x1080 (`benchmarks/cuda_probe.py`, results/gpu-h200-probe.md),
    sub-pixel layers replayed as a CUDA graph, the full net took 12.0 ms NCHW against 18.3 channels_last
    (cuDNN converts layouts around its 9x9 and reflection-padded layers) and the lite net 1.6 against 2.0.
    The CPU runs fp32 (fp16 convolutions on CPU are slower, not faster)."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for but CUDA is not available. Use --device cpu.")
        return name, "float16", False
    if name != "cpu":
        raise ConfigError(f"Unknown device {name!r}. Use auto, cpu or cuda.")
    return "cpu", "float32", False


def resolve_subpixel(device: str) -> bool:
    """Whether the nets' upsampling layers run in their sub-pixel form (`nets.subpixel`: the same function
    with 4/9 of the multiply-adds). Measured on the 2-core CPU at 320x240: 1.6x faster through ONNX Runtime
    and 1.5x in eager torch (`benchmarks/cpu_paths.py`); on an H200 at 1920x1080 fp16 NCHW, replayed as CUDA
    graphs (`benchmarks/cuda_probe.py`): full net 13.1 -> 12.0 ms, lite net 2.3 -> 1.6 ms. Everywhere."""
    return True


def resolve_cuda_graphs(device: str) -> bool:
    """Whether CUDA replays each style net as a CUDA graph (`realtime.cuda_graph`). Measured on an H200 at
    1920x1080 fp16, NCHW, sub-pixel layers (`benchmarks/cuda_probe.py`, results/gpu-h200-probe.md): the lite
    net 7.8 -> 1.6 ms, the full net 13.8 -> 11.9 ms; a graph per style and frame size, captured at warm-up."""
    return device.startswith("cuda")


BACKENDS = ("auto", "torch", "onnxruntime")


def resolve_backend(name: str, device: str) -> str:
    """"auto" | "torch" | "onnxruntime" -> the runtime of the style nets. auto: ONNX Runtime on the CPU
    when it is installed (measured fastest there, benchmarks/cpu_paths.py), torch everywhere else."""
    import importlib.util

    if name not in BACKENDS:
        raise ConfigError(f"Unknown backend {name!r}. Use {', '.join(BACKENDS)}.")
    have_ort = importlib.util.find_spec("onnxruntime") is not None
    if name == "auto":
        return "onnxruntime" if device == "cpu" and have_ort else "torch"
    if name == "onnxruntime":
        if device != "cpu":
            raise ConfigError("--backend onnxruntime runs on the CPU only; use --device cpu, or --backend torch on CUDA.")
        if not have_ort:
            raise ConfigError("--backend onnxruntime needs the onnxruntime package: pip install onnxruntime.")
    return name


def cpu_threads() -> int:
    """Torch threads on the CPU: all cores but one, which segmentation, capture and encoding share.
    Measured on 2 cores (issue 3): the lite net at 320x240 took 62 ms with 1 thread and 150-1000 ms
    with 2 while MediaPipe and another process also ran (OpenMP threads spinning against each other).
    The same holds for ONNX Runtime in the pipeline (sample, 640x480, scale 0.5, quiet machine): file
    mode full 46.6 FPS with 1 thread, 23.6 with 2 (spinning), 40.5 with 2 not spinning; live 30.1 vs
    18.4 / 30.0 FPS, though the net alone is faster on 2 (10.2 vs 14.6 ms, benchmarks/results)."""
    import os

    return max(1, (os.cpu_count() or 2) - 1)


def resolve_encoder_threads(device: str) -> int:
    """libx264 threads for video files. On the CPU the style net takes all cores but one (`cpu_threads`)
    and the last one is shared by decoding, segmentation and encoding: x264's own choice (1.5 threads a
    core, plus lookahead) only adds threads that preempt the net. Measured on 2 cores (sample, 640x480,
    scale 0.5, file mode, 240 frames, 4 rounds alternating the order): background 49.7 FPS with x264's
    choice, 52.1 with 1 thread (faster in every round); full 60.8 and 60.2 (no change). On CUDA the cores
    are free for x264, which keeps its choice (0)."""
    return 0 if device.startswith("cuda") else 1


def known_styles() -> list[str]:
    """The registered styles; a damaged weights folder (manifest not JSON, ...) is a ConfigError."""
    try:
        return registry.list_styles()
    except registry.StyleError as exc:
        raise ConfigError(str(exc)) from None


def resolve_style(name: str, device: str) -> str:
    """A registry name ("lite.starry_night"), or a bare painting ("starry_night"): then `full` on CUDA
    and `lite` on CPU, whichever is registered. A painting's image file (or several mixed, A.jpg+B.jpg) is
    kept as it is: `nets.adain` paints it. Unknown -> ConfigError listing the known styles."""
    if adain.is_painting_spec(name):
        return name
    if not known_styles():
        raise ConfigError(f"No styles are registered in {registry.weights_dir()}. Train one with `stylecam train`.")
    try:
        return registry.resolve(name, device)
    except registry.StyleError as exc:
        raise ConfigError(str(exc)) from None


def default_style(device: str) -> str:
    known = known_styles()
    if not known:
        raise ConfigError(f"No styles are registered in {registry.weights_dir()}. Train one with `stylecam train`.")
    paintings = [n.split(".", 1)[1] for n in known]
    first = "starry_night" if "starry_night" in paintings else paintings[0]
    return resolve_style(first, device)


def style_cycle(first: str, second: str | None) -> tuple[str, ...]:
    """Every registered style of `first`'s architecture (so hotkeys can switch without loading),
    `first` first; `second` included even when of another architecture. A painting file given as `first`
    cycles with `second` only (each painting costs the AdaIN net's start-up, not a preloaded net's)."""
    if adain.is_painting_spec(first):
        return tuple(dict.fromkeys(n for n in (first, second) if n))
    arch = first.split(".", 1)[0]
    rest = [n for n in known_styles() if n.startswith(arch + ".") and n not in (first, second)]
    return tuple([first] + ([second] if second and second != first else []) + rest)
