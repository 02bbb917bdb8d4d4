"""A real single-node SLURM cluster on this machine, for the tests and the executor benchmark.

Debian's ``slurm-wlm`` and ``munge`` (``apt-get install -y slurm-wlm munge``) run as root. Everything
lives in one temporary folder: a munge key and socket, ``slurm.conf`` and ``gres.conf`` for this host
(``hostname -s``, ``CPUs=2``), the daemons' state, spool and logs, and four placeholder character
devices (``mknod NAME c 1 3``, the numbers of ``/dev/null``) that back a GRES ``gpu:4``, so that SLURM
hands out GPU ids and sets ``CUDA_VISIBLE_DEVICES`` per job without a GPU. The names
(``tunecv-placeholder-gpu0`` ...) are ones that no GPU library looks for; they go away with the folder.

No cgroup plugins: ``ProctrackType=proctrack/linuxproc``, ``TaskPlugin=task/none``,
``SelectType=select/cons_tres``. No accounting daemon either, so ``sacct`` has nothing to say: job
states come from ``squeue``, which keeps finished jobs for ``MinJobAge`` seconds.

Use::

    with SlurmCluster() as cluster:   # exports SLURM_CONF for this process and its children
        subprocess.run(["sbatch", ...])

or from a shell: ``python -m tests.slurm.cluster start`` prints ``export SLURM_CONF=...``;
``python -m tests.slurm.cluster stop FOLDER`` stops it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

DAEMONS = ("munged", "slurmctld", "slurmd")
N_GPUS = 4
CPUS = 2


class ClusterUnavailable(RuntimeError):
    """The cluster cannot start here (not root, packages missing); the message says why."""


def why_unavailable() -> Optional[str]:
    """Why a cluster cannot start on this machine, or ``None`` when it can."""
    if os.geteuid() != 0:
        return "the test SLURM cluster runs its daemons as root"
    missing = [d for d in (*DAEMONS, "sbatch", "squeue", "sinfo", "scontrol", "srun")
               if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if missing:
        return f"SLURM / munge not installed (missing {', '.join(missing)}): apt-get install -y slurm-wlm munge"
    return None


def _binary(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    """Start munged, slurmctld and slurmd for this host in a temporary folder; stop and remove them.

    Args:
        root: the folder (default: a new temporary one, removed by :meth:`stop`).
        cpus: CPUs of the node.
        kill_wait: seconds between SIGTERM and SIGKILL when SLURM ends a job (cancel, requeue, timeout).
    """

    def __init__(self, root: Optional[Path] = None, cpus: int = CPUS, kill_wait: int = 5) -> None:
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="tunecv-slurm-"))
        self.own_root = root is None
        self.cpus = cpus
        self.kill_wait = kill_wait
        self.host = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip()
        self.conf = self.root / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}
        self.gpu_files = [self.root / "dev" / f"tunecv-placeholder-gpu{i}" for i in range(N_GPUS)]
        self._old_conf = os.environ.get("SLURM_CONF")

    # -- files ----------------------------------------------------------------------------------------
    def _write_files(self) -> None:
        r = self.root
        for sub in ("munge", "state", "spool", "log", "dev"):
            (r / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        for f in self.gpu_files:
            if not f.exists():
                os.mknod(f, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        ctl_port, d_port = _free_port(), _free_port()
        self.conf.write_text(f"""\
ClusterName=tunecv
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={ctl_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r / "munge" / "munge.socket"}
StateSaveLocation={r / "state"}
SlurmdSpoolDir={r / "spool"}
SlurmctldPidFile={r / "slurmctld.pid"}
SlurmdPidFile={r / "slurmd.pid"}
SlurmctldLogFile={r / "log" / "slurmctld.log"}
SlurmdLogFile={r / "log" / "slurmd.log"}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
GresTypes=gpu
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=900
KillWait={self.kill_wait}
MessageTimeout=20
SlurmdTimeout=300
SlurmctldTimeout=300
InactiveLimit=0
Waittime=0
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} Gres=gpu:{N_GPUS} State=UNKNOWN
PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
""")
        (r / "gres.conf").write_text(
            f"NodeName={self.host} Name=gpu File={self.gpu_files[0].parent}/tunecv-placeholder-gpu[0-{N_GPUS - 1}]\n")

    # -- start / stop -------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> SlurmCluster:
        reason = why_unavailable()
        if reason:
            raise ClusterUnavailable(reason)
        self._write_files()
        r = self.root
        os.environ["SLURM_CONF"] = str(self.conf)
        env = {**os.environ, "SLURM_CONF": str(self.conf)}
        try:
            self._spawn("munged", [_binary("munged"), "-F", "--force", f"--key-file={r / 'munge' / 'munge.key'}",
                                   f"--socket={r / 'munge' / 'munge.socket'}", f"--pid-file={r / 'munge' / 'munged.pid'}",
                                   f"--log-file={r / 'log' / 'munged.log'}", f"--seed-file={r / 'munge' / 'seed'}"],
                        env)
            self._wait(lambda: (r / "munge" / "munge.socket").exists(), 20, "munged did not create its socket")
            self._spawn("slurmctld", [_binary("slurmctld"), "-D", "-c", "-f", str(self.conf)], env)
            self._wait(lambda: self._ok(["scontrol", "ping"], "UP"), timeout, "slurmctld did not answer")
            self._spawn("slurmd", [_binary("slurmd"), "-D", "-f", str(self.conf)], env)
            self._wait(lambda: self._ok(["sinfo", "-h", "-N", "-o", "%T"], "idle"), timeout,
                       "the node did not become idle")
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, cmd: list[str], env: dict) -> None:
        log = open(self.root / "log" / f"{name}.stdout", "wb")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        log.close()

    def _ok(self, cmd: list[str], expect: str) -> bool:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env={**os.environ,
                                                                                  "SLURM_CONF": str(self.conf)})
        return out.returncode == 0 and expect in out.stdout

    def _wait(self, check, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise ClusterUnavailable(f"{name} exited with code {proc.returncode}: {self.logs(name)}")
            if check():
                return
            time.sleep(0.3)
        raise ClusterUnavailable(f"{message} within {timeout:.0f}s: {self.logs()}")

    def logs(self, name: Optional[str] = None, tail: int = 30) -> str:
        """The last lines of the daemons' logs (for error messages)."""
        out = []
        for path in sorted((self.root / "log").glob("*")):
            if name is None or path.name.startswith(name):
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                out.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def stop(self) -> None:
        """Cancel every job, stop the daemons, remove the folder (and the placeholder devices)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, timeout=30,
                           env={**os.environ, "SLURM_CONF": str(self.conf)})
            time.sleep(0.5)
        for name in reversed(DAEMONS):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._kill_strays()
        if self._old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = self._old_conf
        for f in self.gpu_files:
            f.unlink(missing_ok=True)
        if self.own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill_strays(self) -> None:
        """slurmstepd processes of this cluster left behind (they read our spool folder)."""
        for proc_dir in Path("/proc").iterdir():
            if not proc_dir.name.isdigit():
                continue
            try:
                cmdline = (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmdline.startswith("slurmstepd") and str(self.root) in cmdline:
                with contextlib.suppress(OSError):
                    os.kill(int(proc_dir.name), signal.SIGKILL)

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests --------------------------------------------------------------------------
    def run(self, *cmd: str, check: bool = True) -> str:
        """Run a SLURM command against this cluster; its stdout."""
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=60,
                             env={**os.environ, "SLURM_CONF": str(self.conf)})
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}")
        return out.stdout

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Wait until no job is queued or running (a test leaves the cluster as it found it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.run("squeue", "-h", "-o", "%i", check=False).strip():
                return
            time.sleep(0.5)
        raise TimeoutError(f"jobs still in the queue after {timeout:.0f}s: {self.run('squeue', check=False)}")


def main(argv: list[str]) -> int:
    if len(argv) >= 1 and argv[0] == "start":
        cluster = SlurmCluster(Path(argv[1]) if len(argv) > 1 else None)
        cluster.own_root = False
        cluster.start()
        for proc in cluster.procs.values():  # detach: the daemons outlive this command
            proc.returncode = 0
        print(f"export SLURM_CONF={cluster.conf}")
        return 0
    if len(argv) == 2 and argv[0] == "stop":
        root = Path(argv[1])
        env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
        subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, env=env)
        for pid_file in (root / "slurmd.pid", root / "slurmctld.pid", root / "munge" / "munged.pid"):
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
        time.sleep(2)
        shutil.rmtree(root, ignore_errors=True)
        return 0
    print("usage: python -m tests.slurm.cluster start [FOLDER] | stop FOLDER", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
