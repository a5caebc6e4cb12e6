"""Choosing the torch device at run time: CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import os

import torch


def pick_device(choice: str = "auto") -> torch.device:
    """Resolve 'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps' to a usable device, or raise ValueError."""
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(choice)
    except RuntimeError:
        raise ValueError(f"device '{choice}' is not one of auto, cpu, cuda, cuda:N, mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{choice}' was asked for, but no CUDA GPU is available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was asked for, but Apple MPS is not available")
    return dev


def available_cores() -> int:
    """CPU cores this process may run on (its affinity, where the OS tells), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def decode_workers(cores: int) -> int:
    """Decoding processes for a pipeline on `cores` cores: none (a thread decodes) on 2 cores or fewer, where a
    process takes time from the backbone (int8, no cache: 4.2-4.3 images/s against 3.8-4.1 with one process),
    else one per core beyond the first, up to 4."""
    return 0 if cores <= 2 else min(4, cores - 1)


def describe(device: torch.device) -> str:
    """Human name of a device, e.g. 'NVIDIA H100 (cuda:0)' or 'CPU (2 threads)'."""
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        return f"{torch.cuda.get_device_name(idx)} (cuda:{idx})"
    if device.type == "mps":
        return "Apple GPU (mps)"
    return f"CPU ({torch.get_num_threads()} threads)"
