"""The lite net on the CPU through ONNX Runtime: the fastest CPU path measured (issue 5).

`benchmarks/cpu_paths.py` races eager fp32, channels_last, bf16, torch.compile and ONNX Runtime on the
same frame; ONNX Runtime won at the sizes the CPU stylizes (320x240 from 640x480 at scale 0.5: ~14 ms
against ~22 ms eager on one thread) and, unlike torch.compile, needs no C++ compiler and no seconds of
compilation at start-up. The net is exported once per style at construction (~0.4 s, in memory, from
the weights the registry loaded through safetensors), with dynamic height and width so a change of frame
size needs no new export. Its upsampling layers are exported in their sub-pixel form
(`nets.subpixel`, ~1.6x faster here). The output matches eager fp32 to ~1e-6.
"""
from __future__ import annotations

import io
import warnings

import torch

from nets.subpixel import fold_upsampling
from nets.transformer_net import TransformerNet


def export(net: TransformerNet, *, subpixel: bool = True) -> bytes:
    """The fp32 ONNX model of `net`, with dynamic height and width (`subpixel`: folded upsampling)."""
    net = fold_upsampling(net.float()) if subpixel else net.float()
    example = torch.zeros(1, 3, 8 * net.config.stride, 8 * net.config.stride)  # (1, 3, H, W)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and trace notes
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (example,), buf, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {2: "h", 3: "w"}, "y": {2: "h", 3: "w"}})
    return buf.getvalue()


class OnnxRuntimeNet:
    """Callable like the TransformerNet it wraps: (1, 3, H, W) float32 CPU in 0..1 -> same shape out.
    H and W must be multiples of `config.stride`, as for the torch net."""

    def __init__(self, net: TransformerNet, *, threads: int, subpixel: bool = True, model: bytes | None = None):
        """`model`: an ONNX model of `net` to run instead of exporting one (a quantized variant, say)."""
        import onnxruntime as ort

        self.config = net.config
        options = ort.SessionOptions()
        # realtime.config gives all cores but one (the other segments, captures and encodes); 0 = ORT's default.
        options.intra_op_num_threads = max(0, threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        model = model if model is not None else export(net, subpixel=subpixel)
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().float().contiguous()
        (y,) = self.session.run(None, {"x": x.numpy()})
        return torch.from_numpy(y)
