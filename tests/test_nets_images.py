"""Image files: a JPEG cut short is named, where it is refused and where it is painted grey."""
from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import skimage.data

from nets.images import ImageError, load_rgb, probe, readable_images, truncated_jpeg
from realtime.sources import ImageSource


def jpeg_bytes() -> bytes:
    ok, data = cv2.imencode(".jpg", skimage.data.astronaut()[::2, ::2, ::-1].copy())
    assert ok
    return data.tobytes()


@pytest.fixture
def files(tmp_path):
    whole = jpeg_bytes()
    paths = {"whole": whole, "cut": whole[: len(whole) * 6 // 10],
             "trailer": whole + b"camera data appended after the end-of-image marker" * 20}
    for name, data in paths.items():
        (tmp_path / f"{name}.jpg").write_bytes(data)
    return {name: tmp_path / f"{name}.jpg" for name in paths}


def test_only_a_jpeg_cut_short_is_called_truncated(files):
    found = {name: truncated_jpeg(np.fromfile(str(path), np.uint8)) for name, path in files.items()}
    assert found == {"whole": False, "cut": True, "trailer": False}
    png = cv2.imencode(".png", skimage.data.camera())[1]
    assert not truncated_jpeg(png)


def test_a_cut_jpeg_is_named_where_it_is_refused(files):
    """OpenCV's imdecode (every image but a still source) refuses a JPEG cut short: the message says why."""
    with pytest.raises(ImageError, match="cut.jpg is cut short"):
        load_rgb(files["cut"])
    with pytest.raises(ImageError, match="cut short"):
        probe(files["cut"])
    assert load_rgb(files["trailer"]).shape == load_rgb(files["whole"]).shape == (256, 256, 3)
    assert readable_images(files["cut"].parent) == ([files["trailer"], files["whole"]], ["cut.jpg"])


def test_a_cut_jpeg_as_a_source_is_painted_with_a_warning(files, caplog):
    """A still source is read by imread, which paints the missing rows grey: the user is told."""
    with caplog.at_level(logging.WARNING):
        image = ImageSource(files["cut"]).image
    assert "cut.jpg is cut short" in caplog.text and "grey" in caplog.text
    assert (image[-20:] == image[-1, -1]).all()  # the grey rows the warning is about
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        ImageSource(files["trailer"])
    assert not caplog.text
