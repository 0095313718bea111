"""Each worker's measured peak memory, and the client's, on a real ``dask scheduler`` + ``dask worker`` cluster.

Starts the cluster with Dask's own command-line tools, exactly as docs/howto/cluster_scaling.md
tells a user to:

    dask scheduler --port 0 --no-dashboard
    dask worker ADDRESS --nthreads 1 --memory-limit 2GiB        (twice; each under its nanny)

with one FFT/numba/OpenMP thread per worker, then runs the whole pipeline on DATA/manifest.csv
through ``--scheduler`` from a separate client process (``benchmarks/cluster_client.py``'s client:
``run_pipeline`` with counted task arguments and results), once per ``--shared`` value, each into
a fresh store. A watcher samples every 0.5 s the resident memory (RSS) of each worker process and
its children (the nanny's child, which runs the tasks; a restarted worker is picked up as the
nanny's new child) and of the client. Reports per worker its peak RSS, the client's peak RSS
(``ru_maxrss``) and the bytes the client sent to and received from the cluster
(``dask.sizeof`` of every task argument, scattered value and result).

Iteration counts can be lowered with ``--set section.key=value`` to fit in the time: a task's
peak memory depends on its array sizes (scan, frames, slice block, angle block), not on how many
iterations it runs. Not a test; never in CI.

    .venv/bin/python benchmarks/cluster_memory.py DATA --shared 1 0 \\
        --set ptycho.algorithm=RAAR:20 --set align.iterations=2 --set align.binned_iterations=1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster_client import CLIENT  # the counted client, shared with that benchmark

WORKER_ENV = {"CHEMTOMO_FFT_WORKERS": "1", "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
MIB = 2**20


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


class Watcher(threading.Thread):
    """Samples, every ``period`` s, the RSS of each watched process: a worker's nanny's descendants
    (the worker process and any children it starts), or the client process."""

    def __init__(self, roots: dict[str, psutil.Process], period: float = 0.5):
        super().__init__(daemon=True)
        self.roots, self.period = roots, period
        self.peak = {name: 0 for name in roots}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for name, proc in self.roots.items():
                try:
                    # a worker: the nanny's descendants (the process that runs the tasks, which
                    # --memory-limit applies to), not the nanny itself; the client: itself
                    procs = proc.children(recursive=True) if name.startswith("worker") else [proc]
                except psutil.Error:
                    continue
                rss = 0
                for p in procs:
                    try:
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak[name] = max(self.peak[name], rss)
            self.done.wait(self.period)


def _dask(*args: str, env=None, log=None) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("dask")
    return subprocess.Popen([str(exe), *args], env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def run_once(manifest: Path, out: Path, shared: bool, overrides: dict, memory_limit: str, tmp: Path) -> dict:
    env = dict(os.environ, **WORKER_ENV)
    slog = open(tmp / "scheduler.log", "w")  # noqa: SIM115 (the scheduler's log for its whole life)
    sched = _dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", log=slog)
    address = None
    for _ in range(600):
        m = re.search(r"Scheduler at:\s+(tcp://\S+)", (tmp / "scheduler.log").read_text())
        if m:
            address = m.group(1)
            break
        time.sleep(0.1)
    if address is None:
        sched.kill()
        raise SystemExit("dask scheduler did not start: " + (tmp / "scheduler.log").read_text()[-2000:])
    workers = [_dask("worker", address, "--nthreads", "1", "--memory-limit", memory_limit, "--no-dashboard",
                     "--local-directory", str(tmp / f"w{k}"), env=env, log=open(tmp / f"worker{k}.log", "w"))  # noqa: SIM115
               for k in range(2)]
    procs = {f"worker {k}": psutil.Process(w.pid) for k, w in enumerate(workers)}
    try:
        shutil.rmtree(out, ignore_errors=True)
        cenv = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        client_code = CLIENT.replace(
            'cfg = config_for_manifest(manifest, {"compute": {"scheduler": address, "shared_storage": shared}})',
            'import distributed as _d; _c = _d.Client(address); _c.wait_for_workers(2); _c.close()\n'
            'over = json.loads(sys.argv[5]); over.setdefault("compute", {}).update(scheduler=address, shared_storage=shared)\n'
            'cfg = config_for_manifest(manifest, over)')
        nested: dict = {}
        for key, v in overrides.items():
            sec, name = key.split(".", 1)
            nested.setdefault(sec, {})[name] = v
        client = subprocess.Popen([sys.executable, "-c", client_code, str(manifest), str(out), address,
                                   "1" if shared else "0", json.dumps(nested)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cenv)
        procs["client"] = psutil.Process(client.pid)
        watcher = Watcher(procs)
        watcher.start()
        stdout, stderr = client.communicate()
        watcher.done.set()
        watcher.join()
        line = next((ln for ln in stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"client failed (exit {client.returncode}):\n{stderr[-3000:]}")
        res = json.loads(line[7:])
        res["peak_sampled_mib"] = {k: round(v / MIB) for k, v in watcher.peak.items()}
        restarts = sum((tmp / f"worker{k}.log").read_text().count("Restarting worker") for k in range(2))
        res["worker_restarts"] = restarts
        return res
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                w.kill()
        sched.terminate()
        try:
            sched.wait(20)
        except subprocess.TimeoutExpired:
            sched.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="a dataset folder with manifest.csv (chemtomo simulate DIR --preset paper)")
    ap.add_argument("--shared", type=int, nargs="+", default=[1, 0], choices=[0, 1])
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="configuration overrides, e.g. ptycho.algorithm=RAAR:20")
    ap.add_argument("--memory-limit", default="2GiB")
    ap.add_argument("--out", type=Path, default=Path("/tmp/chemtomo-memory"))
    args = ap.parse_args()
    overrides = {kv.split("=", 1)[0]: _value(kv.split("=", 1)[1]) for kv in args.set}
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for shared in args.shared:
        load0 = os.getloadavg()[0]
        with tempfile.TemporaryDirectory(dir=args.out) as tmp:
            res = run_once(args.data / "manifest.csv", args.out / f"run-{'shared' if shared else 'sent'}.zarr",
                           bool(shared), overrides, args.memory_limit, Path(tmp))
        res["load"] = (load0, os.getloadavg()[0])
        rows.append((shared, res))
        print(f"  shared_storage={bool(shared)}: {json.dumps(res)}", flush=True)
    print(f"{args.data} with {overrides}; 2 × dask worker --nthreads 1 --memory-limit {args.memory_limit}; "
          f"{platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| shared_storage | worker 0 peak (MiB) | worker 1 peak (MiB) | client peak (MiB) | sent (MiB) | "
          "received (MiB) | tasks | wall (s) | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for shared, r in rows:
        p = r["peak_sampled_mib"]
        print(f"| {str(bool(shared)).lower()} | {p['worker 0']} | {p['worker 1']} | {r['peak_rss_mib']:.0f} | "
              f"{r['sent'] / MIB:.1f} | {r['received'] / MIB:.1f} | {r['tasks']} | {r['seconds']:.0f} | "
              f"{r['load'][0]:.1f} → {r['load'][1]:.1f} |")


if __name__ == "__main__":
    main()
