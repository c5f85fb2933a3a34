"""A style net replayed as CUDA graphs: one capture per input shape, then every frame of that shape
launches the whole net at once, without Python or a launch per layer.

Measured on an H200 (`benchmarks/cuda_probe.py`, 1920x1080 fp16 NCHW, sub-pixel layers): the lite net's
small kernels are launch-bound in eager mode (7.8 ms), 1.6 ms replayed; the full net 13.8 -> 11.9 ms.
The input is copied into the graph's own buffer and the output copied out of it, so a frame handed on
(to the compositor, to another thread) is never overwritten by the next replay. Each capture keeps its
own memory pool, about one eager forward's peak (the full net at 1080p fp16: ~0.46 GiB, results/gpu-h200.md),
and the Stylizer captures one per style at warm-up: ten full styles at 1080p hold ~4.6 GiB.

A capture that fails with a RuntimeError (a driver, a library or an op that does not support capture)
costs speed, not the stream: that shape runs eagerly from then on, and one warning says so. An error
that leaves the CUDA context broken (a sticky fault) fails the eager run too, and reaches the user as
that error. Tested on the CPU with a capture made to fail; not yet on a GPU.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

WARMUP_RUNS = 3  # eager runs on a side stream before capture (cuDNN autotuning, allocator), as capture requires


class GraphedNet:
    """Callable like `net` (same input and output), for CUDA tensors under `inference_mode`."""

    def __init__(self, net: nn.Module):
        self.net = net
        self.config = net.config  # the stride and margin the Stylizer pads by
        self.graphs: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.cuda.CUDAGraph]] = {}
        self.eager: set[tuple] = set()  # shapes whose capture failed: run without a graph

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, x.stride(), x.device)
        if key in self.eager:
            return self.net(x)
        if key not in self.graphs:
            try:
                self.graphs[key] = self._capture(x)
            except RuntimeError as exc:  # CUDA errors are RuntimeErrors
                self.eager.add(key)
                log.warning("CUDA graph capture failed for frames of %s (%s); running without graphs, slower.",
                            "x".join(map(str, x.shape[-2:][::-1])), " ".join(str(exc).split())[:200])
                return self.net(x)
        static_in, static_out, graph = self.graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()

    def _capture(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.cuda.CUDAGraph]:
        static_in = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device)
        static_in.copy_(x)
        side = torch.cuda.Stream(x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                self.net(static_in)
        torch.cuda.current_stream(x.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):  # other threads may upload meanwhile
            static_out = self.net(static_in)
        return static_in, static_out, graph
