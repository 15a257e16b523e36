"""CPU numerics modes (``params.yaml: numerics``): which kernels compute a CPU result.

``native``: every library picks the fastest kernels for the CPU it runs on: ATen's vector width
(AVX-512 on a Xeon, AVX2 on older or AMD CPUs), oneDNN's ISA (up to AVX-512/AMX) and MKL's code
path (by vendor and ISA). Results are bit-identical for one CPU kind and thread count only.

``portable``: those choices are pinned so that CPU results are bit-identical on any x86-64 CPU
with AVX2 (at the thread count of ``params.yaml: threads``):

- ``ATEN_CPU_CAPABILITY=avx2``: ATen's AVX2 kernels (reductions, pointwise math, Adam) everywhere;
- ``ONEDNN_MAX_CPU_ISA=AVX2``: oneDNN's AVX2 JIT kernels for every convolution;
- ``MKL_CBWR=COMPATIBLE``: MKL's conditional-numerical-reproducibility branch that MKL keeps
  identical on Intel and non-Intel CPUs (its ``AVX2`` branch is honoured on Intel CPUs only and
  silently falls back to per-CPU dispatch elsewhere: on an AMD EPYC ``mkl_cbwr_get`` reports AUTO);
- ``MKL_DYNAMIC=FALSE``, ``OMP_DYNAMIC=FALSE``: no run-time change of the thread count;
- ``NPY_DISABLE_CPU_FEATURES``: NumPy's AVX-512 loops off (NumPy's AVX2 loops run everywhere).

The libraries read these variables when they load, so :func:`apply` must run before torch is
imported (``bench`` does it at start-up from params.yaml, benchmark/cli.py); :func:`settings`
checks afterwards that they took effect. See docs/numerics.md for the evidence behind each pin.
"""
from __future__ import annotations

import os
import sys

MODES = ("native", "portable")
MODE_ENV = "BACKLIT_BENCH_NUMERICS"  # the mode of this process, inherited by the processes it starts
PORTABLE_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "COMPATIBLE",
    "MKL_DYNAMIC": "FALSE",
    "OMP_DYNAMIC": "FALSE",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}
# mkl_cbwr_get(MKL_CBWR_BRANCH) values (mkl_cbwr.h)
_MKL_BRANCHES = {0: "OFF", 1: "OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2",
                 9: "AVX", 10: "AVX2", 12: "AVX512", 14: "AVX512_E1", 16: "AVX512_E2", 18: "AVX512_E3",
                 20: "AVX512_E4", 21: "AVX2_E1", 22: "AVX512_E5"}


class NumericsError(RuntimeError):
    """A numerics mode that cannot take effect in this process or on this CPU; the message says why."""


def check_mode(mode: object) -> str:
    if mode not in MODES:
        raise NumericsError(f"numerics must be one of {', '.join(MODES)}, got {mode!r}")
    return str(mode)


def apply(mode: str) -> None:
    """Set the environment of ``mode`` for this process and the ones it starts; call before torch loads.

    ``portable`` sets :data:`PORTABLE_ENV` (overriding the user's values of those variables);
    ``native`` removes the values a ``portable`` parent set and keeps the user's own. Raises
    :class:`NumericsError` when torch is already imported with other settings.
    """
    mode = check_mode(mode)
    current = os.environ.get(MODE_ENV, "native")
    if "torch" in sys.modules and mode != current:
        raise NumericsError(f"numerics: {mode} must be chosen before torch is imported "
                            f"(this process runs {current}); start a new process")
    if mode == "portable":
        os.environ.update(PORTABLE_ENV)
    elif current == "portable":
        for key, value in PORTABLE_ENV.items():
            if os.environ.get(key) == value:
                del os.environ[key]
    os.environ[MODE_ENV] = mode


def mode() -> str:
    """The numerics mode of this process (``native`` unless :func:`apply` chose another)."""
    return check_mode(os.environ.get(MODE_ENV, "native"))


def _mkl_branch(torch_lib: str) -> str | None:
    """MKL's active CNR branch (``OFF`` when CNR is off), queried from the MKL linked into torch."""
    import ctypes

    try:
        lib = ctypes.CDLL(torch_lib)
        return _MKL_BRANCHES.get(lib.mkl_serv_cbwr_get(1), "other")
    except (OSError, AttributeError):
        return None  # a torch built without MKL


def settings() -> dict[str, object]:
    """The effective numerics of this process (torch imported): mode, kernel choices, library versions.

    Machine-independent in ``portable`` mode, so it belongs in the model files' records. Raises
    :class:`NumericsError` when ``portable`` did not take effect (torch loaded before :func:`apply`,
    or a CPU without AVX2).
    """
    import torch

    m = mode()
    torch_lib = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    record: dict[str, object] = {
        "mode": m,
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.enabled,
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA"),
        "mkl_cbwr": _mkl_branch(torch_lib) if os.path.isfile(torch_lib) else None,
        "npy_disable_cpu_features": os.environ.get("NPY_DISABLE_CPU_FEATURES"),
        "onednn": _config_version("oneDNN v", "MKL-DNN v"),
        "mkl": _config_version("Math Kernel Library Version "),
    }
    if m == "portable":
        if not torch.cpu._is_avx2_supported():
            raise NumericsError("numerics: portable needs an x86-64 CPU with AVX2 and this one has none; "
                                "set numerics: native in params.yaml")
        want = {"aten_cpu_capability": "AVX2", "mkldnn": True, "onednn_max_cpu_isa": "AVX2", "mkl_cbwr": "COMPATIBLE"}
        wrong = {k: record[k] for k, v in want.items() if record[k] != v and not (k == "mkl_cbwr" and record[k] is None)}
        if wrong:
            raise NumericsError(f"numerics: portable did not take effect ({wrong}; want {want}): torch was "
                                "imported before backlit_core.numerics.apply('portable')")
    return record


def _config_version(*prefixes: str) -> str | None:
    """A library version from ``torch.__config__.show()`` (e.g. ``3.12.0`` after ``oneDNN v``)."""
    import torch

    text = torch.__config__.show()
    for prefix in prefixes:
        start = text.find(prefix)
        if start >= 0:
            return text[start + len(prefix):].split()[0].split("-")[0]
    return None
