"""int8: an export's model.onnx quantised statically with onnxruntime's own tools, checked and timed.

Per channel, QDQ, calibrated on a few hundred training images: per-tensor weights can wreck depthwise
convolutions, and dynamic quantisation leaves convolutions in fp32. On CPUs without VNNI the weights use
7 bits (`reduce_range`), or the int8 products can saturate. Nothing here assumes int8 is better: the
export scores and times both files the same way and says how they compare.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

INT8_FILE = "model.int8.onnx"
CALIBRATION_IMAGES = 256  # training images the activation ranges are calibrated on
CALIBRATION_BATCH = 32
TOLERANCE = 0.005  # test accuracy int8 may lose (0.5 points) before the export warns


def calibration_images(images: np.ndarray, count: int = CALIBRATION_IMAGES, seed: int = 0) -> np.ndarray:
    """A seeded sample of training images (uint8 [N, C, H, W]) as the model takes them: float32, 0-255."""
    chosen = np.random.default_rng(seed).permutation(len(images))[:count]
    return images[np.sort(chosen)].astype(np.float32)


class _Batches:
    """onnxruntime's CalibrationDataReader protocol: get_next() -> {input name: batch} or None."""

    def __init__(self, name: str, images: np.ndarray):
        self._feeds = iter([{name: images[i:i + CALIBRATION_BATCH]} for i in range(0, len(images), CALIBRATION_BATCH)])

    def get_next(self):
        return next(self._feeds, None)

    def rewind(self):  # some onnxruntime versions call it; the calibrator reads the batches once
        pass


def has_vnni() -> bool:
    from nas.machine import cpu_flags

    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags())


def quantize(model: Path, out: Path, images: np.ndarray) -> None:
    """Write `out`, the int8 QDQ model of `model`, calibrated (min-max) on `images` (float32 raw pixels)."""
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quant_pre_process,
                                          quantize_static)

    name = onnx.load(str(model), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory() as folder:
        prepared = Path(folder) / "prepared.onnx"
        quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)  # shapes and folded constants
        # activations unsigned, weights signed and symmetric per output channel: what the int8 kernels expect
        quantize_static(str(prepared), str(out), _Batches(name, images), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=not has_vnni(), activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)


def layer_types(model: Path) -> dict[str, int]:
    """The operators of the fp32 model by kind, depthwise convolutions apart: what a warning names."""
    import onnx

    graph = onnx.load(str(model)).graph
    kinds = {}
    for node in graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        kind = "Conv (depthwise)" if node.op_type == "Conv" and group > 1 else node.op_type
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def verdict(fp32_acc: float, int8_acc: float, model: Path) -> str | None:
    """A warning when int8 loses more than TOLERANCE of test accuracy, naming the layers involved; else None."""
    lost = fp32_acc - int8_acc
    if lost <= TOLERANCE:
        return None
    weighted = {k: n for k, n in layer_types(model).items() if k in ("Conv", "Conv (depthwise)", "Gemm", "MatMul")}
    return (f"int8 loses {100 * lost:.2f} points of test accuracy ({100 * fp32_acc:.2f}% -> {100 * int8_acc:.2f}%), "
            f"more than the {100 * TOLERANCE:.1f} allowed; its quantised layers: "
            + ", ".join(f"{n} {k}" for k, n in weighted.items())
            + ". Ship model.onnx (fp32), which is unchanged.")
