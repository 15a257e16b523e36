"""Per-op hash traces of the CPU numerics: which kernel makes a result differ between settings.

A trace runs a small task on the CPU under :class:`torch.utils._python_dispatch.TorchDispatchMode`
and records, for every ATen op in order (autograd's backward ops included), its name, the
convolution backend where there is one, where in the Python code it was called, a hash of its
inputs and the sha256 of its outputs. Two traces of the same task are compared op by op: the
first op whose inputs are identical but whose output differs is the kernel that computes
differently (every op before it agrees bit for bit). Tasks (each a few seconds):

- ``train:<method>`` (latent-prompt, rave, zero-dce): a short training run of every phase (one
  iteration each of CE, warm-up, enhancer and prompt rounds), 32 px crops, batch 2, effnet-lite0;
- ``enhance``: the fast CPU engine (oneDNN) of a seeded enhancer on a test image, in one pass and
  in 64 px tiles;
- ``score``: the metrics of ``params.yaml: evaluate.metrics`` (those that load offline) on a test
  input and its ground truth.

The data set must be prepared (``bench run-stage prepare --dataset synthetic-backlit``).

Commands (run from the project root):

``python perf/trace_numerics.py trace --task train:rave --numerics portable --out t.json.gz``
    one trace in a fresh process; ``--env KEY=VALUE`` (repeatable) after the mode's own settings,
    ``--threads N`` (default: params.yaml), ``--no-mkldnn``.
``python perf/trace_numerics.py diff a.json.gz b.json.gz``
    the first diverging op and every op that diverges on identical inputs.
``python perf/trace_numerics.py matrix``
    every task under native and portable numerics with the perturbations of :data:`PERTURBATIONS`
    (other ISA caps of ATen, oneDNN and MKL, MKL branches, oneDNN off, another thread count),
    each compared with the unperturbed trace of its mode -> perf/results/numerics_trace.json
    (the first diverging op of each), and this machine's portable traces ->
    perf/results/numerics_trace_portable.json.gz (the reference for ``check``).
``python perf/trace_numerics.py check``
    on another machine: trace every task in portable mode and compare with the committed
    perf/results/numerics_trace_portable.json.gz; prints, per task, "identical" or the first
    diverging op, and exits 1 when anything diverges.

Confirming portability on another CPU kind (an Intel Xeon, or any CPU other than the one that made
the committed trace; see the ``machine`` field of that file): check out the same commit with the
same locked environment, ``bench run-stage prepare --dataset synthetic-backlit``, then
``python perf/trace_numerics.py check`` (seconds per task). "identical" for every task means
the kernels of this machine compute bit for bit what the committed machine's did; then
``bench verify --strict`` on the full embedded pipeline (params.yaml ``numerics: portable``) is
expected to be exact, and settles it. A divergence names the op; add it to docs/numerics.md.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "perf" / "results"
REFERENCE_TRACE = RESULTS / "numerics_trace_portable.json.gz"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TASKS = ("train:latent-prompt", "train:rave", "train:zero-dce", "enhance", "score")
GUIDED_TINY = {"ce_iters": 1, "warmup_iters": 1, "enhancer_iters": 1, "prompt_iters": 1, "rounds": 2,
               "batch_size": 2, "prompt_batch_size": 2, "crop": 32, "rank_size": 32, "checkpoint_every": 100}
TRAIN_IMAGES = 4  # backlit and well-lit training images of a traced run
ZERO_DCE_TINY = {"iters": 2, "batch_size": 2, "crop": 32, "checkpoint_every": 100}
# name -> (environment, threads or None for params.yaml's, oneDNN enabled), applied after the mode's settings.
# native: what another CPU, library path or thread count changes; portable: what its pins must make irrelevant
# (a CPU with less ISA for MKL, NumPy's and OpenBLAS's own dispatch); other CPUs' cache sizes and vendor
# cannot be emulated on one machine.
PERTURBATIONS: dict[str, dict[str, tuple[dict[str, str], int | None, bool]]] = {
    "native": {
        "ATen kernels DEFAULT (no AVX2)": ({"ATEN_CPU_CAPABILITY": "default"}, None, True),
        "oneDNN ISA <= AVX": ({"ONEDNN_MAX_CPU_ISA": "AVX"}, None, True),
        "oneDNN off (ATen im2col + MKL)": ({}, None, False),
        "MKL CNR branch AUTO": ({"MKL_CBWR": "AUTO"}, None, True),
        "MKL CNR branch COMPATIBLE": ({"MKL_CBWR": "COMPATIBLE"}, None, True),
        "MKL ISA <= AVX": ({"MKL_ENABLE_INSTRUCTIONS": "AVX"}, None, True),
        "NumPy loops <= X86_V2 (no AVX2)": ({"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}, None, True),
        "OpenBLAS (NumPy) Sandybridge kernels": ({"OPENBLAS_CORETYPE": "Sandybridge"}, None, True),
        "1 thread": ({}, 1, True),
    },
    "portable": {
        "MKL ISA <= AVX": ({"MKL_ENABLE_INSTRUCTIONS": "AVX"}, None, True),
        "MKL ISA <= SSE4.2": ({"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}, None, True),
        "NumPy loops <= X86_V2 (no AVX2)": ({"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}, None, True),
        "OpenBLAS (NumPy) Sandybridge kernels": ({"OPENBLAS_CORETYPE": "Sandybridge"}, None, True),
    },
}
# ops whose output is uninitialised memory: hashed as "-"
UNINITIALISED = ("empty", "new_empty", "empty_like", "empty_strided", "new_empty_strided", "resize_")
# in-place ops that overwrite their first argument: its old content is not an input
OVERWRITE = ("copy_", "fill_", "zero_", "normal_", "uniform_", "random_", "bernoulli_", "exponential_", "set_")


def _tensor_hash(h: hashlib._Hash, t) -> None:
    import torch

    t = t.detach()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    if t.numel():
        if not (t.is_contiguous() and (t.dim() == 0 or t.stride(-1) == 1)):
            t = t.clone(memory_format=torch.contiguous_format)
        h.update(t.cpu().reshape(-1).view(torch.uint8).numpy())


def _digest(obj, known=None) -> str:
    """sha256 (12 hex) of every tensor and scalar in ``obj`` (nested lists/tuples/dicts).

    ``known`` (tensor -> (version, digest)) holds the digests of earlier outputs: a tensor found
    there, unchanged since, is not hashed again.
    """
    import torch

    h = hashlib.sha256()
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, torch.Tensor):
            cache = known is not None and not o.is_inference()  # inference tensors have no version counter
            seen = known.get(o) if cache else None
            if seen is not None and seen[0] == o._version:
                h.update(seen[1].encode())
            else:
                sub = hashlib.sha256()
                _tensor_hash(sub, o)
                digest = sub.hexdigest()[:12]
                if cache:
                    known[o] = (o._version, digest)
                h.update(digest.encode())
        elif isinstance(o, (list, tuple)):
            stack.extend(reversed(o))
        elif isinstance(o, dict):
            stack.extend(o[k] for k in sorted(o, key=str))
        elif o is None or isinstance(o, (bool, int, float, complex, str, torch.dtype, torch.device, torch.layout,
                                         torch.memory_format)):
            h.update(repr(o).encode())
        else:  # e.g. a profiler handle: its repr holds an address
            h.update(type(o).__name__.encode())
    return h.hexdigest()[:12]


def _where() -> str:
    """The innermost calling frame outside torch and this file, as ``path:line``."""
    f = sys._getframe(2)
    torch_dir = os.sep + "torch" + os.sep
    while f is not None:
        name = f.f_code.co_filename
        if torch_dir not in name and not name.endswith("trace_numerics.py"):
            if name.startswith(str(ROOT)):
                name = os.path.relpath(name, ROOT)
            elif "site-packages" in name:
                name = name.split("site-packages" + os.sep, 1)[1]
            return f"{name}:{f.f_lineno}"
        f = f.f_back
    return "?"


def _tracer():
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.weak import WeakIdKeyDictionary

    conv = torch.ops.aten.convolution.default

    class HashTrace(TorchDispatchMode):
        """Records ``[op, detail, where, input hash, output hash]`` for every ATen op."""

        def __init__(self) -> None:
            super().__init__()
            self.ops: list[list[str]] = []
            self.known = WeakIdKeyDictionary()  # tensor -> (version, digest)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func.is_view:  # computes nothing: its output is (part of) its input
                return func(*args, **kwargs)
            name = func.__name__
            written = name.split(".")[0] in OVERWRITE  # the first argument's old content does not count
            inputs = _digest([args[1:] if written else args, {k: v for k, v in kwargs.items() if k != "out"}],
                             self.known)
            out = func(*args, **kwargs)
            detail = "bwd" if torch._C._current_graph_task_id() != -1 else ""
            if func is conv:
                x, w, b, stride, pad, dil, transposed, out_pad, groups = args[:9]
                backend = torch._C._select_conv_backend(x, w, b, stride, pad, dil, transposed, out_pad, groups, None)
                detail = (detail + " " + str(backend).split(".")[-1]).strip()
            if name.split(".")[0] in UNINITIALISED:
                hashed = "-"
                for t in (out if isinstance(out, (list, tuple)) else [out]):
                    if isinstance(t, torch.Tensor) and not t.is_inference():
                        self.known[t] = (t._version, "uninitialised")
            else:
                hashed = _digest(out, self.known)
            self.ops.append([name, detail, _where(), inputs, hashed])
            return out

    return HashTrace()


# ------------------------------------------------------------------------------------ the tasks
def _dataset() -> Path:
    data = ROOT / "datasets" / "data" / "synthetic-backlit"
    if not (data / "train" / "backlit").is_dir():
        sys.exit(f"{data}: not prepared; run `bench run-stage prepare --dataset synthetic-backlit` first")
    return data


def _subset(folder: Path, tmp: Path, n: int = TRAIN_IMAGES) -> Path:
    """A folder of links to the first ``n`` images of ``folder``."""
    out = tmp / folder.name
    out.mkdir()
    for path in sorted(folder.glob("*.png"))[:n]:
        (out / path.name).symlink_to(path)
    return out


def _run_task(task: str, params: dict, threads: int) -> dict:
    """Run ``task``; returns its final results (losses, scores) for the record."""
    import torch

    data = _dataset()
    if task.startswith("train:"):
        from methods.train_api import train_method

        method = task.split(":", 1)[1]
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["BACKLIT_BENCH_CACHE"] = str(Path(tmp) / "cache")  # reference embeddings computed here
            backlit, welllit = _subset(data / "train" / "backlit", Path(tmp)), _subset(data / "train" / "welllit-unpaired", Path(tmp))
            summary = train_method(method, backlit, welllit,
                                   Path(tmp) / "run", encoder="effnet-lite0", identity_encoder="effnet-lite0",
                                   schedule="quick", seed=0, device="cpu", threads=threads, progress=False,
                                   overrides={**((params.get("train") or {}).get(method) or {}),
                                              **(ZERO_DCE_TINY if method == "zero-dce" else GUIDED_TINY)},
                                   fidelity=params.get("fidelity"))
            weights = torch.load(Path(tmp) / "run" / "enhancer.pth", weights_only=True)
        return {"final_loss": summary["final_loss"], "enhancer_sha256": _digest(weights)}
    image = sorted((data / "test" / "input").glob("*.png"))[0]
    if task == "enhance":
        from backlit_core.image_io import load_image
        from methods.network import EnhanceNet
        from methods.tiled_inference import TiledEnhancer

        torch.set_num_threads(threads)
        torch.manual_seed(0)
        net = EnhanceNet(padding="reflect")
        x = load_image(image)[:, :150, :200]
        whole = TiledEnhancer(net, device="cpu")(x)
        tiled = TiledEnhancer(net, device="cpu", tile=64)(x)
        return {"one_pass": _digest(whole), "tiled": _digest(tiled)}
    if task == "score":
        from benchmark.metrics import Pair, load_metrics

        torch.set_num_threads(threads)
        metrics, _ = load_metrics(params["evaluate"]["metrics"])
        pair = Pair(image, data / "test" / "gt" / image.name)
        return {m.name: m.score(pair) for m in metrics}
    raise SystemExit(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")


def trace(task: str, threads: int | None, mkldnn: bool) -> dict:
    """Trace ``task`` in this process (numerics already applied); the trace record."""
    import torch

    from backlit_core import numerics
    from benchmark.params import load_params

    params = load_params(ROOT / "params.yaml")
    threads = threads or params.get("threads") or torch.get_num_threads()
    torch.backends.mkldnn.enabled = mkldnn
    mode = _tracer()
    t0 = time.perf_counter()
    with mode:
        result = _run_task(task, params, threads)
    return {"task": task, "numerics": numerics.settings(), "threads": threads, "machine": _machine(),
            "seconds": round(time.perf_counter() - t0, 2), "result": result, "ops": mode.ops}


def _machine() -> str:
    from backlit_core.provenance import cpu_model

    return cpu_model()


# ------------------------------------------------------------------------------------ comparing
def compare(a: dict, b: dict) -> dict:
    """First diverging op, and every op that diverges although its inputs agree (the kernels that differ)."""
    first, origins, n_diff = None, {}, 0
    ops_a, ops_b = a["ops"], b["ops"]
    for i, (x, y) in enumerate(zip(ops_a, ops_b)):
        if x[0] != y[0]:
            first = first or {"index": i, "op": x[0], "other_op": y[0], "where": x[2], "kind": "op sequence differs"}
            break
        if x[4] != y[4]:
            n_diff += 1
            if first is None:
                kind = "kernel" if x[3] == y[3] else "inputs from outside the trace"
                first = {"index": i, "op": x[0], "detail": x[1], "detail_b": y[1], "where": x[2], "kind": kind}
            if x[3] == y[3]:
                key = f"{x[0]} {x[1]}".strip() + (f" -> {y[1]}" if y[1] != x[1] else "")
                origins.setdefault(key, {"count": 0, "first_index": i, "where": x[2]})["count"] += 1
    if first is None and len(ops_a) != len(ops_b):
        first = {"index": min(len(ops_a), len(ops_b)), "kind": "trace lengths differ"}
    return {"identical": first is None, "ops": len(ops_a), "ops_differing": n_diff, "first": first,
            "differing_kernels": origins, "result_a": a.get("result"), "result_b": b.get("result")}


def _load(path: Path) -> dict:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        return json.load(fh)


def _save(record: dict, path: Path) -> None:
    opener = gzip.open if str(path).endswith(".gz") else open
    path.parent.mkdir(parents=True, exist_ok=True)
    with opener(path, "wt") as fh:
        json.dump(record, fh, separators=(",", ":"))


def _describe(c: dict) -> str:
    if c["identical"]:
        return f"identical ({c['ops']} ops)"
    f = c["first"]
    kernels = ", ".join(f"{k} x{v['count']}" for k, v in c["differing_kernels"].items())
    detail = f.get("detail", "") + (f" -> {f['detail_b']}" if f.get("detail_b", f.get("detail")) != f.get("detail") else "")
    return (f"{c['ops_differing']} of {c['ops']} ops differ; first #{f['index']} {f.get('op')} {detail} "
            f"at {f.get('where')} ({f['kind']}); kernels that differ on identical inputs: {kernels or 'none'}")


def _spawn(task: str, mode: str, out: Path, env: dict[str, str] | None = None, threads: int | None = None,
           mkldnn: bool = True) -> dict:
    cmd = [sys.executable, __file__, "trace", "--task", task, "--numerics", mode, "--out", str(out)]
    cmd += [f"--env={k}={v}" for k, v in (env or {}).items()]
    cmd += ["--threads", str(threads)] if threads else []
    cmd += [] if mkldnn else ["--no-mkldnn"]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return _load(out)


# ------------------------------------------------------------------------------------ commands
def cmd_trace(args: argparse.Namespace) -> None:
    from backlit_core import numerics

    numerics.apply(args.numerics)
    for item in args.env:
        key, _, value = item.partition("=")
        os.environ[key] = value  # after the mode's settings: a perturbation of them
    rec = trace(args.task, args.threads, not args.no_mkldnn)
    rec["env"] = args.env
    _save(rec, Path(args.out))
    print(f"{args.task} [{args.numerics} {' '.join(args.env)}]: {len(rec['ops'])} ops in {rec['seconds']} s -> {args.out}")


def cmd_diff(args: argparse.Namespace) -> None:
    c = compare(_load(Path(args.a)), _load(Path(args.b)))
    print(_describe(c))
    print(json.dumps(c, indent=1))
    sys.exit(0 if c["identical"] else 1)


def cmd_matrix(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "perf"))
    from _common import environment, write_result

    summary: dict = {"environment": environment(), "machine": _machine(), "tasks": list(args.tasks), "modes": {},
                     "native_vs_portable": {}}
    bases: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            rows = summary["modes"].setdefault(mode, {})
            for task in args.tasks:
                base = _spawn(task, mode, Path(tmp) / "base.json")
                again = _spawn(task, mode, Path(tmp) / "again.json")
                bases.setdefault(task, {})[mode] = base
                row = {"ops": len(base["ops"]), "seconds": base["seconds"], "result": base["result"],
                       "settings": base["numerics"], "repeat_identical": compare(base, again)["identical"],
                       "perturbations": {}}
                for name, (env, threads, mkldnn) in PERTURBATIONS[mode].items():
                    c = compare(base, _spawn(task, mode, Path(tmp) / "p.json", env, threads, mkldnn))
                    c.pop("result_a")
                    row["perturbations"][name] = c
                    print(f"{mode:8s} {task:20s} {name:38s} {_describe(c)}", flush=True)
                rows[task] = row
    for task, by_mode in bases.items():
        if len(by_mode) == 2:
            c = compare(by_mode["native"], by_mode["portable"])
            summary["native_vs_portable"][task] = c
            print(f"native -> portable {task:20s} {_describe(c)}", flush=True)
    out_dir = Path(args.out_dir)
    print(write_result("numerics_trace", summary, out_dir))
    portable = {task: by_mode["portable"] for task, by_mode in bases.items() if "portable" in by_mode}
    if portable:
        _save({"machine": _machine(), "traces": portable}, out_dir / REFERENCE_TRACE.name)
        print(out_dir / REFERENCE_TRACE.name)


def cmd_check(args: argparse.Namespace) -> None:
    ref = _load(Path(args.reference))
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for task, committed in ref["traces"].items():
            here = _spawn(task, "portable", Path(tmp) / "t.json")
            c = compare(committed, here)
            failed |= not c["identical"]
            print(f"{task:20s} {_describe(c)}")
    print(f"reference machine: {ref['machine']}; this machine: {_machine()}")
    sys.exit(1 if failed else 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("trace", help="trace one task in this process")
    t.add_argument("--task", required=True, choices=TASKS)
    t.add_argument("--numerics", default="native", choices=("native", "portable"))
    t.add_argument("--env", action="append", default=[], help="KEY=VALUE set after the mode's settings")
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--no-mkldnn", action="store_true")
    t.add_argument("--out", required=True)
    d = sub.add_parser("diff", help="compare two traces")
    d.add_argument("a")
    d.add_argument("b")
    m = sub.add_parser("matrix", help="every task under every perturbation, both modes")
    m.add_argument("--tasks", nargs="+", default=list(TASKS))
    m.add_argument("--modes", nargs="+", default=["native", "portable"])
    m.add_argument("--out-dir", default=str(RESULTS))
    c = sub.add_parser("check", help="compare this machine's portable traces with the committed ones")
    c.add_argument("--reference", default=str(REFERENCE_TRACE))
    args = ap.parse_args()
    {"trace": cmd_trace, "diff": cmd_diff, "matrix": cmd_matrix, "check": cmd_check}[args.command](args)


if __name__ == "__main__":
    main()
