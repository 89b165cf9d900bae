"""What a model costs: params, MACs (fvcore), and deployment latency and throughput.

fvcore counts one multiply-add as one "flop"; we report that figure as MACs, and name the
operators fvcore could not count instead of dropping them silently.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nas.errors import UsageError

BACKENDS = ("onnxruntime", "torch")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def shape_of(model, input_shape=None) -> tuple[int, int, int]:
    """The input (C, H, W) to measure with: given, or the one the model was built for (models.build)."""
    return tuple(input_shape or getattr(model, "input_shape", None) or (1, 28, 28))


def count_macs(model: nn.Module, input_shape=None) -> tuple[int, dict[str, int]]:
    """MACs per image and {operator: calls} that fvcore did not count (elementwise ops, mostly)."""
    input_shape = shape_of(model, input_shape)
    # fvcore traces with torch.jit (deprecated, warns) and logs its skips; keep both off the user's screen
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(model.eval(), torch.zeros(1, *input_shape))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        macs = int(analysis.total())
        uncounted = dict(analysis.unsupported_ops())
    return macs, dict(sorted(uncounted.items()))


def export_onnx(model: nn.Module, path: str, input_shape=None, dynamic_batch: bool = True) -> None:
    """Write an ONNX file that takes float32 raw pixels [N, C, H, W]."""
    example = torch.zeros(1, *shape_of(model, input_shape))
    model = model.eval()
    dynamic = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), path, input_names=["pixels"], output_names=["logits"],
                          dynamic_shapes=dynamic, dynamo=True, optimize=True, verbose=False, external_data=False)


def _time(fn, runs: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    return times


def ort_session(path: str, threads: int = 1):
    """An onnxruntime CPU session with a fixed thread count (sequential: deterministic, comparable)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@contextlib.contextmanager
def torch_threads(threads: int):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _stats(times: np.ndarray, **about) -> dict:
    """Median and IQR, what was timed, and on which CPU: a latency means nothing without its machine."""
    from nas.machine import cpu_model

    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return {"median_ms": float(median * 1e3), "iqr_ms": float((q3 - q1) * 1e3), **about, "runs": len(times),
            "cpu": cpu_model()}


def onnx_latency(path: str, input_shape=None, threads: int = 1, runs: int = 200, warmup: int = 30,
                 batch: int = 1) -> dict:
    """Latency of an ONNX file on the CPU with onnxruntime: median and IQR of `runs` timed calls."""
    session = ort_session(path, threads)
    pixels = session.get_inputs()[0]
    input_shape = input_shape or tuple(pixels.shape[1:])  # the file says what it takes
    feed = {pixels.name: (np.random.default_rng(0).random((batch, *input_shape)) * 255).astype(np.float32)}
    times = _time(lambda: session.run(None, feed), runs, warmup)
    return _stats(times, backend="onnxruntime", threads=threads, device="cpu", batch=batch)


def torch_latency(model, input_shape=None, threads: int = 1, device: str = "cpu", runs: int = 200,
                  warmup: int = 30, batch: int = 1) -> dict:
    """Latency of a torch module (or a loaded torch.export program's module) in inference mode."""
    x = (torch.rand(batch, *shape_of(model, input_shape)) * 255).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def call():
        model(x)
        sync()

    with torch_threads(threads), torch.inference_mode():
        times = _time(call, runs, warmup)
    return _stats(times, backend="torch", threads=threads, device=device, batch=batch)


def latency(model: nn.Module, input_shape=None, backend: str = "onnxruntime", threads: int = 1,
            device: str = "cpu", runs: int = 200, warmup: int = 30, batch: int = 1) -> dict:
    """Seconds per call at `batch` (1 = the deployment figure): median and IQR over `runs` timed calls.

    Never call this while a model trains on the same cores: the figure would be meaningless.
    """
    with latency_timer(model, input_shape, backend, threads, device, runs, warmup, batch) as time_it:
        return time_it()


@contextlib.contextmanager
def latency_timer(model: nn.Module, input_shape=None, backend: str = "onnxruntime", threads: int = 1,
                  device: str = "cpu", runs: int = 200, warmup: int = 30, batch: int = 1, int8_images=None):
    """Yields latency()'s timing as a function of no arguments, with the model already exported to ONNX:
    the export takes seconds that need not keep other work off the cores, the timing alone does.
    int8_images (float32 raw pixels): time the model quantised to int8 on them instead (nas/quantize.py)."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown latency backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    input_shape = shape_of(model, input_shape)
    model = model.eval().float()
    if backend == "torch":
        yield lambda: torch_latency(model.to(device), input_shape, threads, device, runs, warmup, batch)
        return
    if device != "cpu":
        raise UsageError("the onnxruntime latency backend runs on the CPU; use --latency-backend torch for a GPU")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.onnx")
        export_onnx(model, path, input_shape)
        if int8_images is not None:
            from nas import quantize

            quantize.quantize(Path(path), Path(folder) / quantize.INT8_FILE, int8_images)
            path = os.path.join(folder, quantize.INT8_FILE)
        yield lambda: {**onnx_latency(path, input_shape, threads, runs, warmup, batch), "int8": int8_images is not None}


def throughput(model: nn.Module, input_shape=None, batch: int = 256, **kwargs) -> float:
    """Images per second at a larger batch (inference)."""
    result = latency(model, input_shape, batch=batch, runs=kwargs.pop("runs", 20), warmup=3, **kwargs)
    return batch / (result["median_ms"] / 1e3)
