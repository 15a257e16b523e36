"""Which machine a measurement ran on: CPU model, a machine label for comparing timings, torch's threads."""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Any


def cpuinfo_field(name: str) -> str | None:
    """The first ``name`` field of /proc/cpuinfo (None where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    from backlit_core.provenance import cpu_model

    return cpu_model()


def cpu_flags() -> list[str]:
    """The CPU's feature flags (avx512f, amx_bf16, ...); empty where /proc/cpuinfo has none."""
    return (cpuinfo_field("flags") or "").split()


def machine_id(device: str = "cpu") -> str:
    """A label identifying the hardware a timing ran on (ratios need equal labels)."""
    if device.startswith("cuda"):
        import torch

        return f"{platform.node()} / {torch.cuda.get_device_name(torch.device(device))}"
    return f"{platform.node()} / {cpu_name()}"


def runtime() -> dict[str, Any]:
    """CPU model, torch version, torch's intra-op threads and CPU numerics: what every timing record states."""
    import torch

    from backlit_core import numerics

    return {"cpu": cpu_name(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "numerics": numerics.settings()}


def timing_environment(device: str = "cpu") -> dict[str, Any]:
    """Where an inference timing ran: device, machine label, and :func:`runtime`."""
    return {"device": device, "machine": machine_id(device), **runtime()}
