"""Run between a Dask worker and a stage command: ``python stage_guard.py WORKER_PID ARGV...``.

The command runs in a process group of its own. When the worker dies (even by SIGKILL), Linux sends this guard
SIGTERM (``PR_SET_PDEATHSIG``) and the guard SIGKILLs the whole group: the shell DVC starts and whatever that
shell forked (``/bin/sh`` forks its command, bash may exec it). A separate script, not ``preexec_fn``: Python
code between fork and exec is unsafe in a threaded worker. Standard library only; exits with the command's
status (128 + N for a command killed by signal N).
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from types import FrameType

PR_SET_PDEATHSIG = 1
_group: list[int] = []  # the command's process group, once started


def _stop(signum: int, _frame: FrameType | None) -> None:
    for group in _group:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os._exit(128 + signum)


def main(worker: int, argv: list[str]) -> int:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _stop)
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != worker:  # the worker died before the request above took effect
        return 137
    proc = subprocess.Popen(argv, start_new_session=True)
    _group.append(proc.pid)
    returncode = proc.wait()
    return 128 - returncode if returncode < 0 else returncode


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), sys.argv[2:]))
