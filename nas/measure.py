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

import numpy as np
import torch
from torch import nn

from nas.errors import UsageError

BACKENDS = ("onnxruntime", "torch")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape=(1, 28, 28)) -> tuple[int, dict[str, int]]:
    """MACs per image and {operator: calls} that fvcore did not count (elementwise ops, mostly)."""
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


def export_onnx(model: nn.Module, path: str, input_shape=(1, 28, 28), dynamic_batch: bool = True) -> None:
    """Write an ONNX file that takes float32 raw pixels [N, C, H, W]."""
    model = model.eval()
    example = torch.zeros(1, *input_shape)
    dynamic = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), path, input_names=["pixels"], output_names=["logits"],
                          dynamic_shapes=dynamic, dynamo=True, optimize=True, verbose=False)


def _time(fn, runs: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    return times


def _ort_session(model, input_shape, threads: int, folder: str):
    import onnxruntime as ort

    path = os.path.join(folder, "model.onnx")
    export_onnx(model, path, input_shape)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


@contextlib.contextmanager
def _torch_threads(threads: int):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def latency(model: nn.Module, input_shape=(1, 28, 28), backend: str = "onnxruntime", threads: int = 1,
            device: str = "cpu", runs: int = 200, warmup: int = 30, batch: int = 1) -> dict:
    """Seconds per call at `batch` (1 = the deployment figure): median and IQR over `runs` timed calls.

    Never call this while a model trains on the same cores: the figure would be meaningless.
    """
    if backend not in BACKENDS:
        raise UsageError(f"unknown latency backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    model = model.eval().float()
    x = torch.rand(batch, *input_shape) * 255
    if backend == "onnxruntime":
        if device != "cpu":
            raise UsageError("the onnxruntime latency backend runs on the CPU; use --latency-backend torch for a GPU")
        with tempfile.TemporaryDirectory() as folder:
            session = _ort_session(model, input_shape, threads, folder)
            feed = {"pixels": x.numpy()}
            times = _time(lambda: session.run(None, feed), runs, warmup)
    else:
        model = model.to(device)
        x = x.to(device)
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

        def call():
            model(x)
            sync()

        with _torch_threads(threads), torch.inference_mode():
            times = _time(call, runs, warmup)
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return {"median_ms": float(median * 1e3), "iqr_ms": float((q3 - q1) * 1e3), "backend": backend, "threads": threads,
            "device": device, "runs": runs, "batch": batch}


def throughput(model: nn.Module, input_shape=(1, 28, 28), batch: int = 256, **kwargs) -> float:
    """Images per second at a larger batch (inference)."""
    result = latency(model, input_shape, batch=batch, runs=kwargs.pop("runs", 20), warmup=3, **kwargs)
    return batch / (result["median_ms"] / 1e3)
