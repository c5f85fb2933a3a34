"""How a video file's frames are shown: its display matrix as transpose + mirrors (`Orientation`), read
from the first frame's side data (`upright`). Phones store portrait video sideways; some front cameras
store it mirrored."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import av
import numpy as np


@dataclass(frozen=True)
class Orientation:
    """How to show stored frames as players do: transpose (swap rows and columns), then mirror the
    rows (top to bottom) and/or the columns (left to right). The eight combinations are the eight
    right-angle turns and mirrors a display matrix (or an EXIF orientation) can ask for."""
    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    @classmethod
    def from_display_matrix(cls, matrix: Sequence[int]) -> "Orientation | None":
        """FFmpeg's AV_PKT_DATA_DISPLAYMATRIX (9 int32, row-major, a b u / c d v / x y w: a shown pixel is
        at x' = a x + c y, y' = b x + d y of the stored one). None for a turn that is not a right angle."""
        a, b, _, c, d, _ = matrix[:6]
        if b == 0 and c == 0 and a and d:  # no turn, or a half turn: mirrors only
            return cls(False, d < 0, a < 0)
        if a == 0 and d == 0 and b and c:  # a quarter turn: x' from y and y' from x
            return cls(True, b < 0, c < 0)
        return None

    @classmethod
    def from_turns(cls, turns: int) -> "Orientation":
        """np.rot90's k (quarter turns counter-clockwise)."""
        return [cls(), cls(True, True, False), cls(False, True, True), cls(True, False, True)][turns % 4]

    def apply(self, image: np.ndarray) -> np.ndarray:
        if self == Orientation():
            return image
        if self.transpose:
            image = image.transpose(1, 0, *range(2, image.ndim))
        if self.flip_rows:
            image = image[::-1]
        if self.flip_cols:
            image = image[:, ::-1]
        return np.ascontiguousarray(image)


def side_data(frame: av.VideoFrame) -> list:
    """A frame's side data entries (each with `.type` and its bytes). PyAV up to 18.1.0 iterates them;
    18.1.1 iterates their types, as a mapping from type to entry does."""
    container = frame.side_data
    return [container[key] if isinstance(key, av.sidedata.sidedata.Type) else key for key in container]


def upright(path: str | os.PathLike) -> Orientation:
    """What shows the video as players do: its first frame's display matrix, as ffmpeg applies it by
    default (phones store portrait video sideways; some front cameras store it mirrored). A turn that
    is not a right angle goes to the nearest quarter turn. Identity when there is none or nothing decodes."""
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                for data in side_data(frame):
                    if data.type == av.sidedata.sidedata.Type.DISPLAYMATRIX and len(bytes(data)) == 36:
                        found = Orientation.from_display_matrix(np.frombuffer(bytes(data), np.int32).tolist())
                        if found is not None:
                            return found
                return Orientation.from_turns(round((frame.rotation or 0) / 90))
    except (av.FFmpegError, UnicodeDecodeError, StopIteration):
        pass
    return Orientation()
