"""``bench repro``: the stale stages of ``dvc.yaml`` run in parallel on a Dask distributed cluster.

DVC decides what runs and records it (:mod:`benchmark.engine.dvc_stages`), Dask places the stage commands on
workers (:mod:`benchmark.engine.clusters`, :mod:`benchmark.engine.worker`), :mod:`benchmark.engine.reproduce`
connects the two and :mod:`benchmark.engine.timeline` keeps ``results/timing/pipeline.json``.
"""
