"""A real Dask cluster of separate processes for the tests: ``dask scheduler`` and ``dask worker``
started with Dask's own command-line tools (the venv's ``dask`` executable), on 127.0.0.1 only,
on ports the operating system picks. Every process is started in its own session and killed
(SIGKILL to its process group) by :meth:`DaskProcesses.close`, which the fixtures call in a
finaliser, so that a failing test leaves nothing running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import chemtomo

DASK = str(Path(sys.executable).with_name("dask"))
#: one core per worker process: FFTs and numba kernels single-threaded, as `--nthreads 1` means
WORKER_ENV = {"CHEMTOMO_FFT_WORKERS": "1", "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _env() -> dict:
    env = dict(os.environ, **WORKER_ENV)
    src = str(Path(chemtomo.__file__).resolve().parents[1])  # the chemtomo under test, not another install
    env["PYTHONPATH"] = os.pathsep.join([src] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["DASK_DISTRIBUTED__LOGGING__DISTRIBUTED"] = "warning"
    return env


class DaskProcesses:
    """A scheduler and ``n`` workers (``--nthreads 1``, each under its nanny) in ``folder``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen] = []
        self.scheduler: subprocess.Popen | None = None
        self.nannies: list[subprocess.Popen] = []
        self.address = ""

    def _start(self, args: list[str], name: str) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "ab")
        p = subprocess.Popen([DASK] + args, stdout=log, stderr=subprocess.STDOUT, env=_env(),
                             start_new_session=True, cwd=self.folder)
        log.close()
        self.procs.append(p)
        return p

    def start_scheduler(self, timeout_s: float = 30) -> str:
        sf = self.folder / f"scheduler-{len(self.procs)}.json"
        sf.unlink(missing_ok=True)
        self.scheduler = self._start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                      "--scheduler-file", str(sf)], "scheduler")
        t0 = time.time()
        while time.time() - t0 < timeout_s:
            if sf.exists():
                try:
                    self.address = json.loads(sf.read_text())["address"]
                    return self.address
                except (ValueError, KeyError):
                    pass
            if self.scheduler.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"dask scheduler did not start: {(self.folder / 'scheduler.log').read_text()[-2000:]}")

    def start_workers(self, n: int, timeout_s: float = 60) -> None:
        for k in range(n):
            self.nannies.append(self._start(["worker", self.address, "--nthreads", "1", "--nworkers", "1",
                                             "--host", "127.0.0.1", "--no-dashboard", "--nanny",
                                             "--name", f"w{len(self.nannies)}"], f"worker{len(self.nannies)}"))
        self.wait_workers(len([p for p in self.nannies if p.poll() is None]), timeout_s)

    def client(self):
        from distributed import Client
        return Client(self.address, timeout="10s")

    def wait_workers(self, n: int, timeout_s: float = 60) -> None:
        with self.client() as c:
            c.wait_for_workers(n, timeout=timeout_s)

    def worker_pids(self) -> dict[int, int]:
        """``{nanny pid: worker pid}`` of the workers connected now."""
        with self.client() as c:
            pids = c.run(lambda: (os.getppid(), os.getpid()))
        return dict(pids.values())

    def kill_scheduler(self) -> None:
        os.killpg(self.scheduler.pid, signal.SIGKILL)
        self.scheduler.wait()

    def close(self) -> None:
        for p in self.procs:
            # the whole process group, even when its leader is gone: a nanny killed by a test
            # leaves its worker process running in the group (it was the leak of earlier runs)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=30)
        self.procs.clear()
