"""Run a :class:`~benchmark.engine.dvc_stages.Pipeline` on a Dask cluster: every stage whose upstream stages
have finished is checked (``dvc repro``'s staleness test, at the moment ``dvc repro`` would make it) and, when
stale, submitted; Dask runs as many as the workers allow, earliest in DVC's order first.

A failed stage stops its descendants only. Progress: one line per stage event and a total bar with ETA.
"""
from __future__ import annotations

import os
import queue
import sys
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.engine.worker import EVENTS, run_stage

if TYPE_CHECKING:
    from distributed import Client, Future

    from benchmark.engine.dvc_stages import Pipeline
    from benchmark.engine.timeline import Timeline

OK = ("done", "restored", "unchanged")  # a stage in one of these lets its descendants go
FAILED = ("failed", "blocked")


@dataclass
class Outcome:
    """What a run did: stage -> status, and for each failed stage why (and its log)."""

    status: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def named(self, *statuses: str) -> list[str]:
        return [n for n, s in self.status.items() if s in statuses]

    @property
    def ok(self) -> bool:
        return not self.failures


def _shown(path: str | Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


class Runner:
    """The client's loop: check, submit, follow, record."""

    def __init__(self, pipeline: Pipeline, client: Client, timeline: Timeline, gpu_workers: bool,
                 restore_env: dict[str, str | None]) -> None:
        self.pipeline, self.client, self.timeline, self.gpu_workers = pipeline, client, timeline, gpu_workers
        self.restore_env = restore_env
        self.outcome = Outcome(status=dict.fromkeys(pipeline.order, "waiting"))
        self.futures: dict[Future, str] = {}
        self.events: queue.Queue = queue.Queue()
        self.bar = None

    def say(self, what: str, stage: str, detail: str = "") -> None:
        line = f"{what:<9} {stage}{'  ' + detail if detail else ''}"
        self.bar.write(line)

    def _settle(self, stage: str, status: str) -> None:
        self.outcome.status[stage] = status
        self.bar.update(1)

    def run(self) -> Outcome:
        from tqdm import tqdm

        self.client.subscribe_topic(EVENTS, self.events.put)
        self.bar = tqdm(total=len(self.pipeline.order), unit="stage", desc="stages", file=sys.stderr,
                        dynamic_ncols=True, mininterval=1 if sys.stderr.isatty() else 30)
        try:
            while True:
                self._start_ready()
                self._dump()
                if not self.futures:
                    break
                self._follow()
        finally:
            self.pipeline.dump_all()
            self.bar.close()
        self._drain_events()
        return self.outcome

    def interrupt(self) -> None:
        """Stop: kill the running stage commands on every worker, record nothing more."""
        from benchmark.engine.worker import terminate_stages

        self.client.cancel(list(self.futures), force=True)
        self.client.run(terminate_stages)

    def _start_ready(self) -> None:
        status, upstream = self.outcome.status, self.pipeline.upstream
        progressed = True
        while progressed:
            progressed = False
            for stage in self.pipeline.order:
                if status[stage] != "waiting":
                    continue
                failed_up = sorted(u for u in upstream[stage] if status[u] in FAILED)
                if failed_up:
                    self._settle(stage, "blocked")
                    self.say("not run", stage, f"(after failed {', '.join(failed_up)})")
                    progressed = True
                elif all(status[u] in OK for u in upstream[stage]):
                    self._start(stage)
                    progressed = True

    def _start(self, stage: str) -> None:
        try:
            if not self.pipeline.changed(stage):
                self._settle(stage, "unchanged")
                self.say("unchanged", stage)
                return
            cmd = self.pipeline.prepare(stage)
            if cmd is None:
                self.pipeline.record(stage)
                self._settle(stage, "restored")
                self.say("restored", stage, "(from DVC's run cache)")
                return
        except Exception as exc:  # noqa: BLE001 - any DVC error fails this stage, not the run
            self._fail(stage, f"{type(exc).__name__}: {exc}")
            return
        wants_gpu = self.gpu_workers and self.pipeline.needs_device(stage)
        future = self.client.submit(run_stage, replace(cmd, restore_env=self.restore_env), key=f"{stage}-{uuid.uuid4().hex[:8]}", pure=False,
                                    priority=-self.pipeline.order.index(stage),
                                    resources={"GPU": 1} if wants_gpu else None)
        self.futures[future] = stage
        self.outcome.status[stage] = "queued"
        self.say("queued", stage, "(needs a GPU worker)" if wants_gpu else "")

    def _follow(self) -> None:
        from distributed import wait

        try:
            done = wait(list(self.futures), timeout=1.0, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            done = set()
        self._drain_events()
        for future in done:
            self._finished(self.futures.pop(future), future)

    def _drain_events(self) -> None:
        while True:
            try:
                _, event = self.events.get_nowait()
            except queue.Empty:
                return
            stage = event["stage"]
            if stage not in self.outcome.status:
                continue
            attempts = self.timeline.attempt(stage, event)
            if self.outcome.status[stage] == "queued":
                self.outcome.status[stage] = "running"
            retry = f" (attempt {attempts}: the previous worker died)" if attempts > 1 else ""
            self.say("running", stage, f"on worker {event['worker_name']} ({event['host']}){retry}")

    def _finished(self, stage: str, future: Future) -> None:
        log = _shown(self.pipeline.log_file(stage))
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - KilledWorker (died twice) or a failure inside Dask
            self._fail(stage, f"{type(exc).__name__}: {exc}; log: {log}")
            self.timeline.finish(stage, "failed", log=log)
            return
        finally:
            # Let the scheduler forget the task now: a result it still holds for this client would be recomputed
            # (the stage run again) if the worker holding it died later.
            future.release()
        if result["returncode"] != 0:
            self._fail(stage, f"exit status {result['returncode']}; log: {log}")
            self.timeline.finish(stage, "failed", result, log)
            return
        try:
            self.pipeline.record(stage)
        except Exception as exc:  # noqa: BLE001 - e.g. a declared output the command did not write
            self._fail(stage, f"{type(exc).__name__}: {exc}; log: {log}")
            self.timeline.finish(stage, "failed", result, log)
            return
        self._settle(stage, "done")
        self.timeline.finish(stage, "done", result, log)
        self.say("done", stage, f"in {result['end'] - result['start']:.1f} s on worker {result['worker_name']}")

    def _fail(self, stage: str, reason: str) -> None:
        self.outcome.failures[stage] = reason
        self._settle(stage, "failed")
        self.say("failed", stage, reason)

    def _dump(self) -> None:
        unresolved = {n for n, s in self.outcome.status.items() if s in ("waiting", "queued", "running")}
        self.pipeline.dump_ready(unresolved)
