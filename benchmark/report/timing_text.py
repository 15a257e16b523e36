"""One sentence each on how and on what the timings of a results folder were taken, the same wherever
timings are shown (cost tables, metric table, figures, the cost section)."""
from __future__ import annotations

from pathlib import Path

from benchmark.timing import read_inference_run, read_inference_timings


def device_text(rec: dict) -> str:
    """The hardware of a timing record: the GPU's model (and the CPU's), or the CPU's model and threads."""
    cpu = rec.get("cpu") or str(rec.get("machine", "")).rpartition(" / ")[2] or "unknown CPU"
    if str(rec.get("device", "cpu")).startswith("cuda"):
        return f"GPU {str(rec.get('machine', '')).rpartition(' / ')[2] or rec['device']} (CPU {cpu})"
    threads = f", {rec['torch_threads']} torch threads" if rec.get("torch_threads") else ""
    return f"CPU {cpu}{threads}"


def inference_method(root: Path) -> str | None:
    """One sentence: how and on what the inference timings of this results folder were taken (the same text
    under the cost table, the figures and the cost section); None without timings."""
    run = read_inference_run(root)
    if run is not None:
        sizes = ", ".join(f"{s:g}" for s in run.get("sizes_mp") or [])
        return (f"Inference: all systems timed together in one run of the time-inference stage "
                f"(timing/inference.json), repeats round-robin over the systems so that load changes hit all "
                f"alike, on {device_text(run)}, torch {run.get('torch')}; random images of {sizes} MP, "
                f"{run.get('repeats')} timed repeats each after warm-up; ms/MP: median and p25–p75 of the "
                f"repeats at {run.get('reference_megapixels'):g} MP.")
    records = read_inference_timings(root)
    if not records:
        return None
    machines = "; ".join(sorted({device_text(r) for r in records.values()}))
    return ("Inference: per-system records of bench compare / bench time-inference (timing/<system>.json); the "
            "systems of one invocation are timed together, repeats round-robin, and a record kept from an "
            f"earlier invocation was timed then; on {machines}; ms/MP: median and p25–p75 of the repeats at "
            "each record's largest size.")


def training_method(runs: dict[str, dict]) -> str | None:
    """One sentence: how and on what the training timings were taken; None without finished runs."""
    machines = sorted({str(r["machine"]) for r in runs.values() if r.get("machine") and r["status"] == "done"})
    if not machines:
        return None
    return (f"Training: each run timed step by step while it trained (timing/train), on {'; '.join(machines)}.")
