"""What the client of a cluster run costs, with and without ``compute.shared_storage``.

A ``distributed.LocalCluster`` of 2 single-threaded worker *processes* (what ``dask worker
--nthreads 1`` gives) serves, in turn, two runs of the whole pipeline on the same simulated
dataset, each into a fresh store, each from a fresh client process (``chemtomo run --scheduler``
in all but the parsing of the command line):

- ``shared_storage = false``: the tasks return their results (projections, slice blocks) to the
  client, which writes them into the store;
- ``shared_storage = true``: each task writes its own result into the store (atomically, with
  its checksum) and returns a few numbers; the client keeps the bookkeeping.

Measured in the client process: its peak resident memory (``ru_maxrss``, imports included), the
bytes it hands to Dask as task arguments and scattered data (``dask.sizeof`` of every argument of
``Client.submit``/``Client.scatter``) and the bytes of results it receives (``Future.result``,
``Client.gather``): the payload over the network, without Dask's few hundred bytes of framing
per message. Not a test; never in CI.

    .venv/bin/python benchmarks/cluster_client.py [--preset demo] [--out /tmp/chemtomo-client]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import textwrap
import time
from pathlib import Path

WORKER_ENV = {"CHEMTOMO_FFT_WORKERS": "1", "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}

CLIENT = textwrap.dedent("""
    import json, resource, sys, time
    import distributed
    from dask.sizeof import sizeof
    from chemtomo.pipeline import config_for_manifest, run_pipeline

    manifest, out, address, shared = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    count = {"sent": 0, "received": 0, "tasks": 0}

    def payload(values):
        return sum(sizeof(v) for v in values if not isinstance(v, distributed.Future))

    submit, scatter, gather, result = (distributed.Client.submit, distributed.Client.scatter,
                                       distributed.Client.gather, distributed.Future.result)

    def counted_submit(self, func, *args, **kw):
        count["sent"] += payload(args) + payload(v for k, v in kw.items() if k not in ("key", "pure"))
        count["tasks"] += 1
        return submit(self, func, *args, **kw)

    def counted_scatter(self, data, *a, **kw):
        count["sent"] += sizeof(data) * (len(self.scheduler_info()["workers"]) if kw.get("broadcast") else 1)
        return scatter(self, data, *a, **kw)

    def counted_gather(self, futures, *a, **kw):
        r = gather(self, futures, *a, **kw)
        count["received"] += sizeof(r)
        return r

    def counted_result(self, *a, **kw):
        r = result(self, *a, **kw)
        count["received"] += sizeof(r)
        return r

    distributed.Client.submit, distributed.Client.scatter = counted_submit, counted_scatter
    distributed.Client.gather, distributed.Future.result = counted_gather, counted_result
    cfg = config_for_manifest(manifest, {"compute": {"scheduler": address, "shared_storage": shared}})
    t0 = time.perf_counter()
    store = run_pipeline(cfg, out)
    count["seconds"] = time.perf_counter() - t0
    count["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    count["stages"] = {k: round(v.get("seconds", 0), 1) for k, v in store.attrs["stages"].items()}
    print("RESULT " + json.dumps(count))
""")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--out", type=Path, default=Path("/tmp/chemtomo-client"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from distributed import LocalCluster

    from chemtomo.io.simulated import write_dataset
    from chemtomo.simulate import simulate_dataset

    data = args.out / f"data-{args.preset}"
    if not (data / "manifest.csv").exists():
        write_dataset(data, simulate_dataset(preset=args.preset, seed=args.seed))
    load0 = os.getloadavg()
    rows = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      env=WORKER_ENV) as cluster:
        for shared in (False, True):
            out = args.out / f"run-{args.preset}-{'shared' if shared else 'sent'}.zarr"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
            r = subprocess.run([sys.executable, "-c", CLIENT, str(data / "manifest.csv"), str(out),
                                cluster.scheduler_address, "1" if shared else "0"],
                               capture_output=True, text=True, env=env)
            line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                raise SystemExit(r.stderr[-3000:])
            res = json.loads(line[7:])
            rows.append((shared, res))
            print(f"  shared_storage={shared}: {res}  load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load average at start "
          f"{load0}, at end {os.getloadavg()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| shared_storage | client peak RSS (MiB) | sent to workers (MiB) | received (MiB) | tasks | wall (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for shared, r in rows:
        print(f"| {str(shared).lower()} | {r['peak_rss_mib']:.0f} | {r['sent'] / 2**20:.1f} | "
              f"{r['received'] / 2**20:.1f} | {r['tasks']} | {r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
