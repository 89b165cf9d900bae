"""`nas predict`: an export folder + image files -> the top classes, with onnxruntime and nothing else.

Each image is decoded, converted and resized the way the study's data were (nas/sources.py), using
only what the export wrote (metrics.json: input shape, classes), not the study."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nas.errors import UsageError


def images_in(paths: list[str]) -> list[Path]:
    """The files named, and the image files inside the folders named, in a stable order."""
    from nas.sources import IMAGE_SUFFIXES

    found = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"{name}: no such file or folder; name image files or folders of them")
    if not found:
        raise UsageError(f"no images (PNG, JPEG, BMP, WebP) in {', '.join(paths)}")
    return found


def predict(export_dir: str | Path, paths: list[str], top: int = 3, int8: bool = False) -> list[dict]:
    """One row per image: its path and the `top` classes with their probabilities, most likely first; with
    `int8`, from model.int8.onnx."""
    from nas import measure
    from nas.quantize import INT8_FILE
    from nas.sources import _decode, _probe

    folder = Path(export_dir)
    model = folder / (INT8_FILE if int8 else "model.onnx")
    if not (folder / "metrics.json").is_file() or not (folder / "model.onnx").is_file():
        raise UsageError(f"{folder} is not a finished nas export (no metrics.json or model.onnx); give a folder "
                         f"that nas export wrote")
    if not model.is_file():
        raise UsageError(f"{folder} has no {INT8_FILE}; make it with nas quantize {folder}, or leave out --int8")
    contract = json.loads((folder / "metrics.json").read_text())
    channels, size = contract["input"]["shape"][1], contract["input"]["shape"][2]
    classes = contract["classes"]
    files = images_in(paths)
    unreadable = [str(p) for p in files if _probe(p) is None]
    if unreadable:
        raise UsageError(f"{len(unreadable)} file(s) are not readable images, e.g. {', '.join(unreadable[:3])}")
    pixels = np.stack([_decode(p, channels, size) for p in files]).astype(np.float32)
    session = measure.ort_session(str(model))
    logits = session.run(None, {session.get_inputs()[0].name: pixels})[0]
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    rows = []
    for path, p in zip(files, probabilities):
        best = np.argsort(-p)[:top]
        rows.append({"path": str(path), "top": [{"class": classes[i], "probability": round(float(p[i]), 4)}
                                                 for i in best]})
    return rows
