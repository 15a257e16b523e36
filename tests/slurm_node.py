"""A one-node Slurm on this machine for tests: munged, slurmctld and slurmd from Debian's ``slurm-wlm`` and
``munge``, every file in one folder, free ports, ``SLURM_CONF`` for the clients (sbatch, squeue, scancel).

Needs root (slurmd launches jobs as their user) and the Debian packages; :func:`start` returns the reason when
it cannot run, and the caller skips with it.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


def _binary(name: str) -> str | None:
    return shutil.which(name) or next((str(p) for p in (Path("/usr/sbin") / name,) if p.exists()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hardware() -> tuple[str, int, int]:
    """(node name, CPUs, memory in MB) as slurmd sees them."""
    out = subprocess.run([_binary("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(item.split("=", 1) for item in out.split()[:8] if "=" in item)
    return fields["NodeName"], int(fields["CPUs"]), int(fields["RealMemory"])


@dataclass
class SlurmNode:
    folder: Path
    env: dict[str, str]  # SLURM_CONF for sbatch, squeue, scancel

    def stop(self) -> None:
        for pid_file in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
            path = self.folder / pid_file
            if path.is_file():
                try:
                    os.kill(int(path.read_text().split()[0]), signal.SIGTERM)
                except (ProcessLookupError, ValueError):
                    pass


def start(folder: Path) -> SlurmNode | str:
    """Start the three daemons in ``folder``; the node, or why it cannot run."""
    missing = [d for d in DAEMONS if _binary(d) is None]
    if missing:
        return f"{', '.join(missing)} not installed (Debian: apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "a one-node Slurm needs root here (slurmd starts jobs as their user)"
    for sub in ("munge", "state", "spool", "log", "jobs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "munge").chmod(0o700)
    key = folder / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    socket_path = folder / "munge" / "munge.socket"
    munged = subprocess.run(
        [_binary("munged"), "-f", f"--socket={socket_path}", f"--key-file={key}", f"--log-file={folder}/log/munged.log",
         f"--pid-file={folder}/munge/munged.pid", f"--seed-file={folder}/munge/seed"],
        capture_output=True, text=True, check=False)
    if munged.returncode != 0:
        return f"munged did not start: {munged.stderr.strip()}"
    name, cpus, memory = _hardware()
    conf = folder / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=bench", f"SlurmctldHost={name}(127.0.0.1)", "SlurmUser=root", "SlurmdUser=root",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
        "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={socket_path}",
        f"StateSaveLocation={folder}/state", f"SlurmdSpoolDir={folder}/spool",
        f"SlurmctldPidFile={folder}/slurmctld.pid", f"SlurmdPidFile={folder}/slurmd.pid",
        f"SlurmctldLogFile={folder}/log/slurmctld.log", f"SlurmdLogFile={folder}/log/slurmd.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU", "ReturnToService=2", "MpiDefault=none",
        f"NodeName={name} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN",
        f"PartitionName=debug Nodes={name} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES", ""]))
    env = dict(os.environ, SLURM_CONF=str(conf))
    node = SlurmNode(folder, {"SLURM_CONF": str(conf)})
    for daemon in ("slurmctld", "slurmd"):
        done = subprocess.run([_binary(daemon), "-f", str(conf)], env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            node.stop()
            return f"{daemon} did not start: {done.stderr.strip() or done.stdout.strip()}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True,
                               check=False).stdout.strip()
        if state == "idle":
            return node
        time.sleep(0.5)
    log = (folder / "log" / "slurmctld.log").read_text()[-500:] if (folder / "log" / "slurmctld.log").is_file() else ""
    node.stop()
    return f"the Slurm node did not become idle in 30 s (sinfo: {state!r}); slurmctld log: {log}"
