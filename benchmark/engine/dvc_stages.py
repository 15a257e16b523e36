"""The DVC side of ``bench repro``: which stages, in which order, whether each is stale, and recording a run.

Every step is the one ``dvc repro`` takes, through DVC's own objects (``dvc.repo.Repo``, its index graph and
``Stage`` methods), split where the command runs elsewhere:

- plan: ``dvc.repo.reproduce.plan_repro`` over the active graph (the order ``dvc repro`` visits stages);
- before a run (under the repo lock): ``stage.changed()``; ``stage.remove_outs()``; the run cache
  (``stage_cache.restore``: the same command, dependencies and params ran before) or ``stage.save_deps()``;
- the command itself runs on a Dask worker (DVC releases the repo lock around it too);
- after it (under the repo lock): ``stage.save()`` (hashes, run cache) and ``stage.commit()`` at once, so a
  finished stage is in the cache and the run cache even if this process dies; ``stage.dump()`` into dvc.lock
  in the planned order, so dvc.lock is written as a serial ``dvc repro`` writes it.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.engine.worker import StageCommand

if TYPE_CHECKING:
    from dvc.repo import Repo
    from dvc.stage import Stage

DEVICE_PARAM = "device"  # a stage that reads this params key runs on a GPU worker when the cluster has them
LOG_DIR = Path(".dvc") / "tmp" / "repro"  # one log per stage command (git-ignored, beside DVC's own tmp files)


class UnsupportedStageError(ValueError):
    """A stage ``bench repro`` does not run itself (an import, a frozen or a command-less stage)."""


class Pipeline:
    """The stages ``dvc repro TARGETS`` would visit, in its order, and the DVC operations on them."""

    def __init__(self, root: str | Path = ".", targets: Iterable[str] = ()) -> None:
        from dvc.repo import Repo
        from dvc.repo.reproduce import collect_stages, get_active_graph, plan_repro

        logging.getLogger("dvc").setLevel(logging.WARNING)  # one line per stage is ours; DVC's warnings stay
        self.repo: Repo = Repo(str(root), _wait_for_lock=True)  # = `dvc --wait-for-lock`: wait, never fail
        with self.locked():
            graph = get_active_graph(self.repo.index.graph)
            steps = plan_repro(graph, collect_stages(self.repo, list(targets) or ["dvc.yaml"]))
        self.stages: dict[str, Stage] = {s.addressing: s for s in steps}
        self.order: list[str] = list(self.stages)
        # DVC's edges point from a stage to the stages it depends on.
        self.upstream: dict[str, set[str]] = {
            name: {u.addressing for u in graph.successors(stage)} & set(self.stages)
            for name, stage in self.stages.items()}
        for name, stage in self.stages.items():
            if not stage.cmd or stage.frozen or stage.is_import:
                raise UnsupportedStageError(f"{stage.relpath}: stage '{name}' is frozen, an import or has no "
                                            "command; run `dvc repro` for it")
        self._recorded: list[str] = []  # saved and committed, not yet in dvc.lock

    @property
    def root(self) -> Path:
        return Path(self.repo.root_dir)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """DVC's repo lock, held only while DVC state is read or written (as `dvc repro` holds it)."""
        from dvc.repo import lock_repo

        with lock_repo(self.repo):
            yield

    def descendants(self, name: str) -> set[str]:
        found, todo = set(), [name]
        while todo:
            current = todo.pop()
            for other, ups in self.upstream.items():
                if current in ups and other not in found:
                    found.add(other)
                    todo.append(other)
        return found

    def needs_device(self, name: str) -> bool:
        """True when the stage reads the ``device`` param (training, enhancing with a network, timing)."""
        return any(DEVICE_PARAM in (getattr(dep, "params", None) or []) for dep in self.stages[name].deps)

    def changed(self, name: str) -> bool:
        with self.locked():
            return bool(self.stages[name].changed())

    def prepare(self, name: str) -> StageCommand | None:
        """Get ``name`` ready to run as ``dvc repro`` does; ``None`` when DVC restored it from its run cache."""
        from dvc.stage.cache import RunCacheNotFoundError

        stage = self.stages[name]
        with self.locked():
            stage.remove_outs(ignore_remove=False, force=False)
            try:
                self.repo.stage_cache.restore(stage)
                return None
            except RunCacheNotFoundError:
                stage.save_deps()
        return self.command(name)

    def command(self, name: str) -> StageCommand:
        """The stage's commands as DVC's runner spawns them (its shell, flags and ``DVC_*`` variables)."""
        from dvc.env import DVC_ROOT, DVC_STAGE
        from dvc.stage.run import _enforce_cmd_list, _make_cmd, get_executable

        stage = self.stages[name]
        return StageCommand(
            stage=name,
            argvs=[_make_cmd(get_executable(), cmd) for cmd in _enforce_cmd_list(stage.cmd)],
            cwd=stage.wdir,
            log=str(self.log_file(name)),
            env={DVC_ROOT: self.repo.root_dir, DVC_STAGE: name},
            remove=[out.fs_path for out in stage.outs if not out.persist],
        )

    def log_file(self, name: str) -> Path:
        return self.root / LOG_DIR / f"{name.replace('@', '-').replace(os.sep, '-')}.log"

    def record(self, name: str) -> None:
        """Hash and commit a finished stage's outputs (and its run-cache entry), as ``Stage.run`` does after the
        command; dvc.lock is written by :meth:`dump_ready`."""
        stage = self.stages[name]
        no_cache_outs = any(not out.use_cache for out in stage.outs if not (out.is_metric or out.is_plot))
        with self.locked():
            stage.save(run_cache=not no_cache_outs)
            stage.commit()
        self._recorded.append(name)

    def dump_ready(self, unresolved: set[str]) -> list[str]:
        """Write dvc.lock entries of recorded stages in plan order, up to the first stage still ``unresolved``
        (queued, running, or not yet checked); returns the stages written."""
        written: list[str] = []
        recorded = set(self._recorded)
        for name in self.order:
            if name in unresolved:
                break
            if name in recorded:
                written.append(name)
        self._dump(written)
        return written

    def dump_all(self) -> list[str]:
        """Write every recorded stage to dvc.lock (in plan order): the end of a run, or an interrupted one."""
        written = [n for n in self.order if n in set(self._recorded)]
        self._dump(written)
        return written

    def _dump(self, names: list[str]) -> None:
        if not names:
            return
        with self.locked():
            for name in names:
                self.stages[name].dump(update_pipeline=False)
        self._recorded = [n for n in self._recorded if n not in names]
