"""A real single-node SLURM cluster on this machine, for the tests and the executor benchmark.

Debian's ``slurm-wlm`` and ``munge`` (``apt-get install -y slurm-wlm munge``) run as root. Everything
lives in one temporary folder: a munge key and socket, ``slurm.conf`` and ``gres.conf`` for this host
(``hostname -s``, ``CPUs=2``), the daemons' state, spool and logs, and four placeholder character
devices (``mknod NAME c 1 3``, the numbers of ``/dev/null``) that back a GRES ``gpu:4``, so that SLURM
hands out GPU ids and sets ``CUDA_VISIBLE_DEVICES`` per job without a GPU. The names
(``tunecv-placeholder-gpu0`` ...) are ones that no GPU library looks for; they go away with the folder.

No cgroup plugins: ``ProctrackType=proctrack/linuxproc``, ``TaskPlugin=task/none``,
``SelectType=select/cons_tres``.

Accounting, so that ``sacct`` answers for the jobs ``squeue`` has forgotten (after ``MinJobAge``): a
MariaDB server of its own (``mariadb-install-db`` + ``mariadbd`` on a free port of 127.0.0.1, its data in
the folder) and ``slurmdbd`` on it (``apt-get install -y slurmdbd mariadb-server``; the packages' own
services are not used). Where they are not installed the cluster runs without accounting
(``accounting=False``) and ``sacct`` has nothing to say.

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

DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")
ACCOUNTING = ("mariadbd", "mariadb-install-db", "mariadb", "slurmdbd", "sacct", "sacctmgr")
# What `.ci/run` installs for these tests (tests/unit/test_fail_fast.py keeps the two lists equal)
APT_PACKAGES = ("slurm-wlm", "munge", "slurmdbd", "mariadb-server")
INSTALL_HINT = f"apt-get install -y {' '.join(APT_PACKAGES)}"
N_GPUS = 4
CPUS = 2


class ClusterUnavailable(RuntimeError):
    """The cluster cannot start here (not root, packages missing); the message says why."""


def why_unavailable() -> Optional[str]:
    """Why a cluster cannot start on this machine, or ``None`` when it can."""
    if os.geteuid() != 0:
        return "the test SLURM cluster runs its daemons as root"
    missing = [d for d in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "srun")
               if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if missing:
        return f"SLURM / munge not installed (missing {', '.join(missing)}): {INSTALL_HINT}"
    return None


def accounting_available() -> bool:
    """Whether MariaDB and slurmdbd are installed (the cluster then keeps accounting)."""
    return all(shutil.which(d) is not None or Path("/usr/sbin", d).exists() for d in ACCOUNTING)


def _binary(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _die_with_parent() -> None:
    """In a daemon before exec: the kernel sends it SIGTERM when the process that started it ends, so a
    test session killed before its teardown leaves no cluster behind (Linux ``PR_SET_PDEATHSIG``)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)
    except Exception:  # pragma: no cover - not Linux
        pass


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
        accounting: run MariaDB and slurmdbd too (default: where they are installed).
    """

    def __init__(self, root: Optional[Path] = None, cpus: int = CPUS, kill_wait: int = 5,
                 accounting: Optional[bool] = None) -> None:
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="tunecv-slurm-"))
        self.own_root = root is None
        self.cpus = cpus
        self.kill_wait = kill_wait
        self.host = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip()
        self.conf = self.root / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}
        self.gpu_files = [self.root / "dev" / f"tunecv-placeholder-gpu{i}" for i in range(N_GPUS)]
        self._old_conf = os.environ.get("SLURM_CONF")
        self.accounting = accounting_available() if accounting is None else accounting

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
        self.db_port, self.dbd_port = _free_port(), _free_port()
        if self.accounting:
            (r / "slurmdbd.conf").write_text(f"""\
AuthType=auth/munge
AuthInfo=socket={r / "munge" / "munge.socket"}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={self.dbd_port}
SlurmUser=root
PidFile={r / "slurmdbd.pid"}
LogFile={r / "log" / "slurmdbd.log"}
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.db_port}
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
""")
            (r / "slurmdbd.conf").chmod(0o600)  # slurmdbd refuses a config others can read
        # AccountingStoragePass: the munge socket the SLURM commands use towards slurmdbd (not the default one)
        accounting = (f"AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=127.0.0.1\n"
                      f"AccountingStoragePort={self.dbd_port}\n"
                      f"AccountingStoragePass={r / 'munge' / 'munge.socket'}\n" if self.accounting
                      else "AccountingStorageType=accounting_storage/none\n")
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
{accounting.rstrip()}
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
            if self.accounting:
                self._start_accounting(env, timeout)
            self._spawn("slurmctld", [_binary("slurmctld"), "-D", "-c", "-f", str(self.conf)], env)
            self._wait(lambda: self._ok(["scontrol", "ping"], "UP"), timeout, "slurmctld did not answer")
            self._spawn("slurmd", [_binary("slurmd"), "-D", "-f", str(self.conf)], env)
            self._wait(lambda: self._ok(["sinfo", "-h", "-N", "-o", "%T"], "idle"), timeout,
                       "the node did not become idle")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_accounting(self, env: dict, timeout: float) -> None:
        """MariaDB in the folder (a user ``slurm`` for slurmdbd), then slurmdbd, then this cluster in it."""
        r = self.root
        out = subprocess.run([_binary("mariadb-install-db"), "--no-defaults", "--user=root", f"--datadir={r / 'db'}",
                              "--auth-root-authentication-method=socket", "--skip-test-db"],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise ClusterUnavailable(f"mariadb-install-db failed: {out.stdout[-1000:]}{out.stderr[-1000:]}")
        sock = r / "mysql.sock"
        self._spawn("mariadbd", [_binary("mariadbd"), "--no-defaults", "--user=root", f"--datadir={r / 'db'}",
                                 f"--socket={sock}", f"--port={self.db_port}", "--bind-address=127.0.0.1",
                                 f"--pid-file={r / 'mariadbd.pid'}", "--skip-name-resolve",
                                 "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M"], env)
        self._wait(sock.exists, timeout, "mariadbd did not create its socket")
        sql = "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm'; GRANT ALL ON *.* TO 'slurm'@'127.0.0.1';"
        self._wait(lambda: subprocess.run([_binary("mariadb"), "--no-defaults", "-S", str(sock), "-u", "root",
                                           "-e", sql], capture_output=True, timeout=30).returncode == 0,
                   timeout, "could not create the slurm user in MariaDB")
        self._spawn("slurmdbd", [_binary("slurmdbd"), "-D"], {**env, "SLURM_CONF": str(self.conf)},
                    extra_env={"SLURMDBD_CONF": str(r / "slurmdbd.conf")})
        last: dict = {}

        def dbd_answers() -> bool:
            out = subprocess.run(["sacctmgr", "-n", "-P", "list", "cluster", "format=cluster"], capture_output=True,
                                 text=True, timeout=30, env={**os.environ, "SLURM_CONF": str(self.conf)})
            last["out"] = out.stdout + out.stderr
            return out.returncode == 0

        try:
            self._wait(dbd_answers, timeout, "slurmdbd did not answer")
        except ClusterUnavailable as exc:
            raise ClusterUnavailable(f"{exc}\nsacctmgr: {last.get('out', '')}") from None
        add = subprocess.run(["sacctmgr", "-i", "add", "cluster", "tunecv"], capture_output=True, text=True,
                             timeout=60, env={**env, "SLURM_CONF": str(self.conf)})
        if add.returncode != 0 and "already exists" not in add.stdout + add.stderr:
            raise ClusterUnavailable(f"sacctmgr add cluster failed: {add.stdout}{add.stderr}")

    detach = False  # `python -m tests.slurm.cluster start`: the daemons outlive the command

    def _spawn(self, name: str, cmd: list[str], env: dict, extra_env: Optional[dict] = None) -> None:
        log = open(self.root / "log" / f"{name}.stdout", "wb")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**env, **(extra_env or {})},
                                            start_new_session=True,
                                            preexec_fn=None if self.detach else _die_with_parent)
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
        cluster.detach = True
        cluster.start()
        for proc in cluster.procs.values():  # detach: the daemons outlive this command
            proc.returncode = 0
        print(f"export SLURM_CONF={cluster.conf}")
        return 0
    if len(argv) == 2 and argv[0] == "stop":
        root = Path(argv[1])
        env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
        subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, env=env)
        for pid_file in (root / "slurmd.pid", root / "slurmctld.pid", root / "slurmdbd.pid", root / "mariadbd.pid",
                         root / "munge" / "munged.pid"):
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
        time.sleep(2)
        shutil.rmtree(root, ignore_errors=True)
        return 0
    print("usage: python -m tests.slurm.cluster start [FOLDER] | stop FOLDER", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
