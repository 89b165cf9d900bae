"""Which machine a figure came from: CPU model, cores, the instruction sets that matter, library versions.

These machines change between sessions (AVX2-only Zen 3, AVX-512 + bf16 Zen 4, AMX Xeon), and a speed
figure means nothing without its CPU, so every timing nas records carries this."""

from __future__ import annotations

import functools
import os
import platform
import time

ISA = ("amx_tile", "amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f", "avx2")  # best first


@functools.cache
def cpu_flags() -> frozenset[str]:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return frozenset()
    line = next((l for l in text.splitlines() if l.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


@functools.cache
def cpu_model() -> str:
    """'AMD EPYC (family 25 model 17)': the model name, with family and model where the name is generic."""
    fields = {}
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or "unknown CPU"
    name = fields.get("model name", platform.processor() or "unknown CPU")
    return f"{name} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')})"


def describe() -> dict:
    """The machine as recorded beside a figure."""
    import onnxruntime
    import torch

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "isa": [f for f in ISA if f in cpu_flags()],
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


def summary(described: dict | None = None) -> str:
    """One line for a figure's header: 'AMD EPYC (family 25 model 17), 2 cores, avx512_bf16 avx512f avx2,
    torch 2.14.1, onnxruntime 1.32.0'."""
    d = described or describe()
    return (f"{d['cpu']}, {d['cores']} cores, {' '.join(d['isa']) or 'no AVX2'}, torch {d['torch']}, "
            f"onnxruntime {d['onnxruntime']}")


def header() -> str:
    """The first line every benchmark prints: the machine and the time, so no figure lacks its CPU."""
    return f"machine: {summary()}; {time.strftime('%Y-%m-%d %H:%M:%S')}"
