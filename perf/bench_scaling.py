"""Scaling of CPU inference with image size (0.25 to 12 megapixels): time and peak memory.

``python perf/bench_scaling.py [--sizes 0.25,0.5,1,2,4,8,12] [--repeats 2] [--threads N]``

Each size runs in a fresh process (so its peak RSS is its own): load the network, one warm-up
call on a one-tile image, then ``--repeats`` timed calls of the default engine
(``TiledEnhancer(net, "cpu")``: fast fp32 path, the CPU default tile, two-pass tiling above it) on a
random 4:3 image. Reported: ms per image and per megapixel (median, spread), peak RSS, and a
least-squares line ms = a + b * MP with its R^2. ``--untiled`` adds one single-pass run (tile
larger than the image) at that size, for the memory a full-image forward needs.
Results: perf/results/scaling.json.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys

from _common import ROOT, environment, summary, write_result

from methods.tiled_inference import DEFAULT_TILE

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
import torch
from _common import enhancer_net
from methods.tiled_inference import TiledEnhancer
if {threads}:
    torch.set_num_threads({threads})
h, w, repeats, tile = {h}, {w}, {repeats}, {tile}
engine = TiledEnhancer(enhancer_net(), "cpu", tile=tile)
engine(torch.rand(3, min(h, 1024), min(w, 1024)))
rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = torch.rand(3, h, w)
seconds = []
for _ in range(repeats):
    t0 = time.perf_counter()
    out = engine(image)
    seconds.append(time.perf_counter() - t0)
    del out
print(json.dumps({{"seconds": seconds, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "rss_before_image_kib": rss_before_kib, "threads": torch.get_num_threads()}}))
"""


def run_size(mp: float, repeats: int, threads: int | None, tile: int) -> dict:
    h = round(math.sqrt(mp * 1e6 * 3 / 4))
    w = round(h * 4 / 3)
    code = CHILD.format(root=str(ROOT), bench=str(ROOT / "perf"), threads=threads or 0, h=h, w=w,
                        repeats=repeats, tile=tile)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"size {mp} MP failed:\n{res.stderr[-3000:]}")
    child = json.loads(res.stdout.strip().splitlines()[-1])
    megapixels = h * w / 1e6
    return {"height": h, "width": w, "megapixels": megapixels, "tile": tile, "threads": child["threads"],
            "ms": summary([s * 1e3 for s in child["seconds"]]),
            "ms_per_megapixel": summary([s * 1e3 / megapixels for s in child["seconds"]]),
            "peak_rss_mib": child["peak_rss_kib"] / 1024, "rss_before_image_mib": child["rss_before_image_kib"] / 1024}


def linear_fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    intercept = my - slope * mx
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return {"ms_per_megapixel_slope": slope, "intercept_ms": intercept, "r_squared": 1 - ss_res / ss_tot if ss_tot else 1.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="0.25,0.5,1,2,4,8,12", help="comma-separated megapixel sizes")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--tile", type=int, default=DEFAULT_TILE["cpu"])
    ap.add_argument("--untiled", type=float, default=2.0, help="size (MP) of one single-pass run for comparison; 0: none")
    args = ap.parse_args()
    env = environment()
    rows = []
    for mp in (float(s) for s in args.sizes.split(",")):
        rows.append(run_size(mp, args.repeats, args.threads, args.tile))
        r = rows[-1]
        print(f"{r['megapixels']:6.2f} MP: {r['ms']['median']:9.0f} ms ({r['ms_per_megapixel']['median']:.0f} ms/MP), "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
    fit = linear_fit([r["megapixels"] for r in rows], [r["ms"]["median"] for r in rows])
    record = {
        "environment": env, "after_load_average": environment()["load_average"],
        "method": (f"one process per size; one warm-up call, then {args.repeats} timed calls of TiledEnhancer(net, 'cpu', "
                   f"tile={args.tile}) on a random 4:3 image; peak RSS = ru_maxrss of that process"),
        "sizes": rows, "fit": fit,
    }
    if args.untiled:
        untiled = run_size(args.untiled, 1, args.threads, tile=1 << 16)
        record["single_pass_comparison"] = untiled
        print(f"single pass {untiled['megapixels']:.2f} MP: peak RSS {untiled['peak_rss_mib']:.0f} MiB")
    print(f"fit: {fit}")
    print(f"wrote {write_result('scaling', record)}")


if __name__ == "__main__":
    main()
