"""The Stylizer's runtimes: ONNX Runtime on the CPU paints what torch paints, and the choice is made once
in realtime.config."""
from __future__ import annotations

import json

import av
import cv2
import numpy as np
import pytest
import torch

from realtime.config import StyleConfig, resolve_backend
from realtime.errors import ConfigError
from realtime.stylize import Stylizer


@pytest.fixture(scope="module")
def frame(carphone) -> np.ndarray:
    """Frame 40 of carphone (a face in a car), upscaled to 640x480 like the sample."""
    with av.open(str(carphone)) as c:
        rgb = next(f for i, f in enumerate(c.decode(video=0)) if i == 40).to_ndarray(format="rgb24")
    return np.ascontiguousarray(cv2.resize(rgb, (640, 480), interpolation=cv2.INTER_LINEAR))


@pytest.mark.parametrize("scale,strength", [(1.0, 1.0), (0.5, 0.7)])
def test_onnxruntime_and_subpixel_layers_paint_what_plain_torch_paints(frame, style_name, scale, strength):
    pytest.importorskip("onnxruntime")
    out = {}
    for backend, subpixel in (("torch", False), ("torch", True), ("onnxruntime", False), ("onnxruntime", True)):
        st = Stylizer(config=StyleConfig(styles=(style_name,), scale=scale, strength=strength, threads=1,
                                         backend=backend, subpixel=subpixel))
        out[backend, subpixel] = st.to_image(st.stylize(st.to_tensor(frame))).astype(np.int16)
        st.close()
    want = out["torch", False]
    assert want.shape == frame.shape
    for key, got in out.items():
        diff = np.abs(want - got)
        assert diff.max() <= 2, f"{key} differs from plain torch by up to {diff.max()} levels"
    # and it did paint: the picture is far from the input
    assert np.abs(out["onnxruntime", True] - frame.astype(np.int16)).mean() > 10


def test_backend_is_resolved_once_and_refused_where_it_cannot_run():
    pytest.importorskip("onnxruntime")
    assert resolve_backend("auto", "cpu") == "onnxruntime"
    assert resolve_backend("auto", "cuda") == "torch"
    assert resolve_backend("torch", "cpu") == "torch"
    with pytest.raises(ConfigError, match="CPU only"):
        resolve_backend("onnxruntime", "cuda")
    with pytest.raises(ConfigError, match="Unknown backend"):
        resolve_backend("tensorrt", "cpu")


def test_cuda_runs_fp16_nchw_sub_pixel_and_graphs_the_cpu_none_of_those(monkeypatch):
    """What the H200 probe measured fastest (realtime.config docstrings, results/gpu-h200-probe.md)."""
    from realtime.config import resolve_cuda_graphs, resolve_device, resolve_subpixel

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("cuda") == ("cuda", "float16", False)
    assert resolve_device("cpu") == ("cpu", "float32", False)
    assert resolve_subpixel("cuda") and resolve_subpixel("cpu")
    assert resolve_cuda_graphs("cuda:0") and not resolve_cuda_graphs("cpu")


def test_cli_default_on_cpu_is_onnxruntime_and_flag_overrides(style_name, capsys):
    pytest.importorskip("onnxruntime")
    from realtime.cli import main

    assert main(["--device", "cpu", "--style", style_name, "--print-config"]) == 0
    style = json.loads(capsys.readouterr().out)["style"]
    assert style["backend"] == "onnxruntime" and style["subpixel"] is True and style["cuda_graphs"] is False
    assert main(["--device", "cpu", "--style", style_name, "--output", "x.mp4", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["output"]["encoder_threads"] == 1  # the net's cores stay its own
    assert main(["--device", "cpu", "--style", style_name, "--backend", "torch", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["style"]["backend"] == "torch"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_stylizer_fp16_paints_what_the_cpu_paints(frame, style_name):
    """The CUDA path (fp16, channels_last, resizes in torch) against the CPU path, whole frame."""
    from realtime.config import resolve_device

    device, dtype, channels_last = resolve_device("cuda")
    out = {}
    for cfg in (StyleConfig(styles=(style_name,), scale=0.5, threads=1, backend="torch"),
                StyleConfig(styles=(style_name,), scale=0.5, device=device, dtype=dtype, channels_last=channels_last),
                StyleConfig(styles=(style_name,), scale=0.5, device=device, dtype=dtype, channels_last=channels_last,
                            subpixel=True),
                StyleConfig(styles=(style_name,), scale=0.5, device=device, dtype=dtype, channels_last=channels_last,
                            subpixel=True, cuda_graphs=True)):
        st = Stylizer(config=cfg)
        st.warmup((640, 480))
        out[cfg.device, cfg.subpixel, cfg.cuda_graphs] = st.to_image(st.stylize(st.to_tensor(frame))).astype(np.int16)
        st.close()
    assert np.array_equal(out[device, True, True], out[device, True, False])  # a graph replays the same kernels
    for subpixel in (False, True):
        diff = np.abs(out["cpu", False, False] - out[device, subpixel, False])
        # resizes differ (OpenCV area/bilinear on the CPU, torch bilinear on CUDA) and fp16: a few levels
        assert diff.mean() < 3 and np.percentile(diff, 99) < 25, subpixel


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_graphed_net_replays_per_shape_and_hands_out_its_own_copies(style_name):
    from nets import registry
    from realtime.cuda_graph import GraphedNet

    net = registry.load(style_name).cuda().half().eval()
    graphed = GraphedNet(net)
    a, b = (torch.rand(1, 3, 96, 128, device="cuda").half() for _ in range(2))
    with torch.inference_mode():
        ya, yb = graphed(a), graphed(b)  # one capture, then a replay into the same buffers
        yc = graphed(torch.rand(1, 3, 64, 64, device="cuda").half())  # another size: another graph
        assert len(graphed.graphs) == 2 and yc.shape[-2:] == (64, 64)
        assert torch.equal(ya, net(a)) and torch.equal(yb, net(b))  # ya kept its values through b's replay


def test_a_failed_graph_capture_runs_that_shape_eagerly_with_one_warning(style_name, monkeypatch, caplog):
    from nets import registry
    from realtime.cuda_graph import GraphedNet

    calls = []

    def refuse(self, x):
        calls.append(tuple(x.shape))
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing")

    monkeypatch.setattr(GraphedNet, "_capture", refuse)
    net = registry.load(style_name).eval()
    graphed = GraphedNet(net)
    x = torch.rand(1, 3, 32, 48)
    with torch.inference_mode(), caplog.at_level("WARNING", logger="realtime.cuda_graph"):
        outs = [graphed(x) for _ in range(3)]
        expect = net(x)
    assert calls == [(1, 3, 32, 48)] and not graphed.graphs  # tried once, never again for that shape
    assert all(torch.equal(y, expect) for y in outs)
    assert len(caplog.records) == 1 and "48x32" in caplog.text and "without graphs" in caplog.text
