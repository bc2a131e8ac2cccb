"""What the machine can do fast: bf16 on this CPU or GPU, and the precision to train with."""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_vnni() -> bool:
    """int8 dot products (VNNI or AMX): without them onnxruntime's int8 products of full 8-bit weights can saturate
    (its ``reduce_range``)."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags())


# oneDNN's instruction sets (ONEDNN_MAX_CPU_ISA) from the first one with bf16 dot products on
BF16_ISAS = ("AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10_1_512_AMX")


@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True where the CPU has native bf16 instructions (avx512_bf16 or AMX) and torch may use them; without them
    bf16 autocast is emulated and much slower than fp32 (figures in experiments/bench/README.md). A cap below
    bf16 in ``ONEDNN_MAX_CPU_ISA`` (e.g. AVX2, how experiments/bench emulates an AVX2-only CPU) counts as none."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    if isa not in ("ALL", "DEFAULT") and not isa.startswith(BF16_ISAS):
        return False
    flags = cpu_flags()
    from_torch = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    from_torch = from_torch or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return bool(from_torch or {"avx512_bf16", "amx_bf16"} & flags)


def gpu_has_native_bf16() -> bool:
    """True on GPUs with bf16 arithmetic (CUDA compute capability 8+, ROCm). torch's ``is_bf16_supported()`` also says
    True where bf16 is only emulated (T4, V100), slower than fp16 there."""
    return torch.cuda.is_bf16_supported(including_emulation=False)


# precisions (Lightning's names, and the short ones predict takes) that run under autocast, with its dtype
AUTOCAST = {"bf16-mixed": torch.bfloat16, "bf16": torch.bfloat16, "16-mixed": torch.float16, "16": torch.float16}
FULL_PRECISION = ("32-true", "32")  # no autocast


def resolve_precision(precision: str | int, accelerator: str = "cpu") -> str:
    """The one precision decision, for the Trainer and the Predictor: a Lightning precision for
    ``precision='auto'`` on ``accelerator`` (cpu, cuda/gpu, auto); other values pass through unchanged."""
    if str(precision) != "auto":
        return str(precision)
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if gpu:
        chosen = "bf16-mixed" if torch.cuda.is_available() and gpu_has_native_bf16() else "16-mixed"
        reason = "GPU"
    elif cpu_has_fast_bf16():
        chosen, reason = "bf16-mixed", "CPU has native bf16 (avx512_bf16/AMX)"
    else:
        chosen, reason = "32-true", "CPU has no native bf16 (emulated bf16 is slower than fp32)"
    log.info("precision=auto -> %s (%s)", chosen, reason)
    return chosen


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a precision (``AUTOCAST``), None for full precision."""
    return AUTOCAST.get(str(precision))
