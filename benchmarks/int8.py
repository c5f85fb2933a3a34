"""An int8 variant of the lite net for the CPU race (`benchmarks.cpu_paths`): measured, not shipped.

ONNX Runtime static quantization (QDQ, per-channel int8 weights, uint8 activations) of the Conv layers
only (instance norms stay fp32), calibrated on frames of the bundled sample clip. It enters the race
like any other path, so it wins only if it is both faster and within the race's tolerance of eager fp32.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


class _Frames:
    """onnxruntime's CalibrationDataReader protocol over (1, 3, H, W) float32 arrays."""

    def __init__(self, arrays: list[np.ndarray]):
        self._it = iter([{"x": a} for a in arrays])

    def get_next(self) -> dict | None:
        return next(self._it, None)


def quantize(model: bytes, calibration: list[np.ndarray]) -> bytes:
    """The int8 QDQ form of an fp32 ONNX `model` (input "x"), calibrated on `calibration` frames."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        fp32, pre, int8 = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        fp32.write_bytes(model)
        quant_pre_process(str(fp32), str(pre))
        quantize_static(str(pre), str(int8), _Frames(calibration), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        op_types_to_quantize=["Conv"])
        return int8.read_bytes()
