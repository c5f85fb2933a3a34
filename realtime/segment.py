"""Person mask from MediaPipe selfie segmentation (mediapipe==0.10.21, the model file its wheel ships),
smoothed in time, refined at edges with the frame as guide, and feathered.

Contract: `Segmenter(frame) -> mask`, float32 (H, W) in 0..1, 1 = person, same H, W as the frame. The
returned array is an internal buffer, valid until the next call (copy it to keep it).
"""
from __future__ import annotations

import os
import warnings

import cv2
import numpy as np

from nets.native import native_stderr_silenced
from realtime.config import SEGMENT_MODELS, SegmentConfig
from realtime.errors import ConfigError, SegmentError
from realtime.frames import Frame

MODEL_FILES = {"general": "selfie_segmentation.tflite", "landscape": "selfie_segmentation_landscape.tflite"}
MIN_WORK_SIDE = 320  # px, longest side: the smallest size a mask is computed at (the models take 256 px)


def mediapipe():
    """(mediapipe, its tasks' vision module, BaseOptions), imported on first use: the rest of StyleCam
    (full mode to a file, stills, training) runs without MediaPipe, and its absence is one clear line."""
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError as exc:
        raise SegmentError(f"MediaPipe cannot be imported ({exc}); install it with pip install mediapipe==0.10.21, "
                           "or use --mode full.") from exc
    return mp, vision, BaseOptions


def model_path(model: str) -> str:
    if model not in MODEL_FILES:
        raise ConfigError(f"Unknown segmentation model {model!r}; known: {', '.join(SEGMENT_MODELS)}.")
    return os.path.join(os.path.dirname(mediapipe()[0].__file__), "modules", "selfie_segmentation", MODEL_FILES[model])


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a grey float32 guide, from box filters. `cv2.ximgproc.guidedFilter`
    (opencv-contrib) computes the same (max abs difference ~1e-6, tested) ~1.5x faster, and is used where
    it exists; this serves OpenCV builds without contrib (opencv-python-headless)."""
    if hasattr(cv2, "ximgproc"):
        return cv2.ximgproc.guidedFilter(guide, src, radius, eps)
    size = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, size, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(src)
    a = (box(guide * src) - mean_i * mean_p) / (box(guide * guide) - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


class Segmenter:
    def __init__(self, *, config: SegmentConfig = SegmentConfig()):
        if config.every < 1:
            raise ConfigError("--mask-every must be 1 or more.")
        self.config = config
        self._net = None
        path = model_path(config.model)
        fix = ("Reinstall MediaPipe (pip install --force-reinstall mediapipe==0.10.21), or use --mode full "
               "with a file output.")
        if not os.path.isfile(path):
            raise SegmentError(f"MediaPipe's selfie model {path} is missing. {fix}")
        self._mp, vision, base_options = mediapipe()
        options = vision.ImageSegmenterOptions(
            base_options=base_options(model_asset_path=path),
            running_mode=vision.RunningMode.IMAGE,  # IMAGE: no timestamps, so skipped frames are fine
            output_confidence_masks=True, output_category_mask=False)
        try:
            with native_stderr_silenced(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*MessageFactory.*")  # protobuf 4 deprecation in mediapipe
                self._net = vision.ImageSegmenter.create_from_options(options)
                self._infer(np.zeros((144, 256, 3), np.uint8))  # first run: delegate set-up (and its log)
        # MediaPipe reports a bad model or graph as RuntimeError (C++ status) or ValueError (options).
        except (RuntimeError, ValueError, OSError) as exc:
            self.close()
            msg = " ".join(str(exc).split())  # C++ statuses span lines; the user gets one
            raise SegmentError(f"MediaPipe could not build the person segmenter from {path} "
                               f"({exc.__class__.__name__}: {msg}). {fix}") from exc
        self._calls = 0
        self._raw: np.ndarray | None = None  # last network output (H, W) float32
        self._prev: np.ndarray | None = None  # last smoothed mask
        self._out: np.ndarray | None = None

    def _infer(self, image: np.ndarray) -> np.ndarray:
        result = self._net.segment(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=image))
        return result.confidence_masks[0].numpy_view()  # (H, W) float32, person probability

    def _smooth(self, new: np.ndarray) -> np.ndarray:
        """EMA whose weight grows where old and new disagree: still regions are steady (no flicker),
        moving edges follow the new mask at once (no lag behind motion)."""
        if self._prev is None or self._prev.shape != new.shape or self.config.smoothing <= 0:
            self._prev = new.copy()
            return self._prev
        k = self.config.smoothing
        diff = np.abs(new - self._prev)
        weight = np.clip(diff * 4.0, 0.0, 1.0)  # disagreement of 0.25 or more -> take the new mask
        weight *= k
        weight += 1.0 - k  # (1 - k) where they agree, 1 where they disagree
        self._prev += weight * (new - self._prev)
        return self._prev

    def _refine(self, image: np.ndarray, mask: np.ndarray, halve: bool = True) -> np.ndarray:
        """Guided filter (He et al., "Guided Image Filtering", 2010) with the grey frame as guide, at half
        resolution (`halve`) or at the working size: the mask edge snaps to the frame's edges (hair,
        shoulders). Grey at half size costs ~1/5 of a colour guide at full size on a 2-core CPU."""
        h, w = mask.shape
        small = (max(1, w // 2), max(1, h // 2)) if halve else (w, h)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if halve:
            grey = cv2.resize(grey, small, interpolation=cv2.INTER_AREA)
        guide = grey.astype(np.float32) * (1.0 / 255.0)
        m = cv2.resize(mask, small, interpolation=cv2.INTER_AREA) if halve else mask
        m = guided_filter(guide, m, 4, 1e-3)
        return cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) if halve else m

    def work_size(self, h: int, w: int) -> tuple[int, int] | None:
        """(width, height) the mask is computed at for an (h, w) frame, or None for the frame's own size.

        Half the frame's size, its longest side at most `work_side`; a frame whose half would be under
        MIN_WORK_SIDE keeps its own size (and `_refine` halves it there). Either way the guided filter
        runs at half the frame's size (less above 1920 px), and MediaPipe's model sees 256x144 (landscape) whatever it is given.
        Measured on the 2-core CPU, sample clip, landscape model: at 1920x1080, 31.8 ms a mask at the
        frame's size, 21.3 ms at 960x540 (of which the guided filter 6.6, MediaPipe 4.3, the final
        upscale 0.7), within 0.0024 of the full-size mask on average (p99 0.045); at 640x480, CPU time of
        all threads 4.8-5.4 ms a mask at the frame's size, 3.2-3.4 at 320x240 (mean difference 0.0046,
        p99 0.088; no difference to see in the composite), and `background` file mode 89-102 -> 109-116
        FPS (3 rounds); at 1280x720, 15.4-16.0 ms at 960x540, 7.8-8.0 at 640x360 (mean 0.0038)."""
        side = self.config.work_side
        if not side:
            return None
        side = min(side, max(h, w) // 2)
        if side < MIN_WORK_SIDE:
            return None
        scale = side / max(h, w)
        return max(1, round(w * scale)), max(1, round(h * scale))

    def __call__(self, frame: Frame | np.ndarray) -> np.ndarray:
        image = frame.image if isinstance(frame, Frame) else frame
        h, w = image.shape[:2]
        work = self.work_size(h, w)
        small = cv2.resize(image, work, interpolation=cv2.INTER_AREA) if work else image
        if self._raw is None or self._calls % self.config.every == 0 or self._raw.shape != small.shape[:2]:
            self._raw = self._infer(small).copy()
        self._calls += 1
        mask = self._smooth(self._raw)
        if self.config.refine:
            # a frame downscaled for the mask is refined at that size: at 1080p that is the half size
            # the full-size path refines at
            mask = self._refine(small, mask, halve=work is None)
        k = self.config.feather if work is None else round(self.config.feather * work[0] / w)
        if k > 1:
            mask = cv2.GaussianBlur(mask, (k | 1, k | 1), 0)
        if work is not None:
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
        if self._out is None or self._out.shape != mask.shape:
            self._out = np.empty_like(mask)
        np.clip(mask, 0.0, 1.0, out=self._out)
        return self._out

    def close(self) -> None:
        if self._net is not None:
            self._net.close()
            self._net = None
