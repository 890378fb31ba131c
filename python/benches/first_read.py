"""The first ``get`` of small values after a restart, builds of tiered side by side.

``bench.py``'s restart scenario gives one figure per run for the installed build; on a shared
machine, runs minutes apart differ by more than the changes being tried. This script puts
builds in the same rounds: each round fills one folder (tiered's entries, the warm restart's
fillers, as in ``bench.py``; diskcache's), copies tiered's folder once per variant, and reads
each copy, then diskcache's, in fresh processes, in an order that rotates between rounds. It
prints each variant's median time and the median of its per-round ratios to ``diskcache.get``
(the figure to compare: both sides of a ratio ran in the same minute).

A variant is ``NAME=DIR``: a folder holding a ``tiered`` package (a copy of ``python/tiered``
with its built ``_tiered.abi3.so``, or a wheel unpacked), put first on ``PYTHONPATH``; ``NAME``
alone is the installed package. ``NAME:MEM`` reads with that memory tier size (``1`` admits
nothing: a read that keeps nothing in memory). Example::

    python python/benches/first_read.py --rounds 20 installed before=/tmp/before installed:1

Installs nothing: needs ``diskcache`` and the ``tiered`` package.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench  # noqa: E402  (its values, keys and fillers: the same entries as its restart scenario)

#: The warm restart's fillers, as ``bench.py``'s full run writes them.
FILLERS = 16


def fill(folder: str, n: int) -> None:
    import diskcache
    import tiered

    cache = tiered.Cache(os.path.join(folder, "tiered"), memory=bench.RESTART_MEMORY)
    for i in range(n):
        cache.set(bench.small_key(i), bench.small_value(i))
    bench.write_fillers(cache, FILLERS)
    cache.close()
    dc = diskcache.Cache(os.path.join(folder, "diskcache"))
    for i in range(n):
        dc.set(bench.small_key(i), bench.small_value(i))
    dc.close()


def read(folder: str, kind: str, n: int, memory: str) -> dict[str, Any]:
    order = list(range(n))
    random.Random(1).shuffle(order)
    keys = [bench.small_key(i) for i in order]
    if kind == "diskcache":
        import diskcache

        store: Any = diskcache.Cache(os.path.join(folder, "diskcache"))
    else:
        import tiered

        store = tiered.Cache(os.path.join(folder, kind), memory=memory)
        store.get("no such key")  # the open is lazy
        bench.wait_for_warm_restart(store)
    get = store.get
    got: list[Any] = [None] * n  # kept, as bench.py keeps them
    t0 = time.perf_counter()
    for j, k in enumerate(keys):
        got[j] = get(k)
    per_read = (time.perf_counter() - t0) / n
    for j, i in enumerate(order):
        if got[j] != bench.small_value(i):
            raise AssertionError(f"{kind}: wrong value for {keys[j]}")
    out: dict[str, Any] = {"t": per_read}
    if kind != "diskcache":
        out["disk_hits"] = store.stats()["disk_hits"]
    return out


def child(args: list[str]) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), "--child", json.dumps(args)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("variants", nargs="*", help="NAME, NAME=DIR, or either with :MEM")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        what = json.loads(a.child)
        if what[0] == "fill":
            fill(what[1], what[2])
        else:
            print(json.dumps(read(what[1], what[2], what[3], what[4])))
        return
    if not a.variants:
        p.error("name at least one variant (installed: the installed package)")

    variants: list[tuple[str, dict[str, str], str]] = []
    for spec in a.variants:
        name, _, memory = spec.partition(":")
        name, _, path = name.partition("=")
        env = dict(os.environ)
        if path:
            env["PYTHONPATH"] = os.path.abspath(path) + os.pathsep + env.get("PYTHONPATH", "")
        variants.append((spec, env, memory or bench.RESTART_MEMORY))
    times: dict[str, list[float]] = {spec: [] for spec, _, _ in variants}
    times["diskcache"] = []
    root = tempfile.mkdtemp(prefix="tiered-first-read-")
    try:
        for r in range(a.rounds):
            folder = os.path.join(root, f"round{r}")
            os.mkdir(folder)
            subprocess.run(child(["fill", folder, a.keys]), check=True, env=variants[0][1])
            runs: list[tuple[str, list[str], dict[str, str]]] = []
            for n, (spec, env, memory) in enumerate(variants):
                shutil.copytree(os.path.join(folder, "tiered"), os.path.join(folder, f"v{n}"))
                runs.append((spec, child(["read", folder, f"v{n}", a.keys, memory]), env))
            runs.append(("diskcache", child(["read", folder, "diskcache", a.keys, ""]),
                         dict(os.environ)))
            k = r % len(runs)
            for spec, cmd, env in runs[k:] + runs[:k]:
                done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
                out = json.loads(done.stdout.strip().splitlines()[-1])
                times[spec].append(out["t"])
                if r == 0 and "disk_hits" in out:
                    print(f"{spec}: {out['disk_hits']:,} disk hits of {a.keys:,} reads")
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    dc = times["diskcache"]
    print(f"\nFirst get of each of {a.keys:,} small values after a restart; {a.rounds} rounds")
    print(f"  {'variant':32} {'median':>10} {'diskcache.get / it, per round':>31}")
    for spec, _, _ in variants:
        ratio = statistics.median(d / t for d, t in zip(dc, times[spec]))
        print(f"  {spec:32} {statistics.median(times[spec]) * 1e6:8.2f} us {ratio:30.2f}x")
    print(f"  {'diskcache.get':32} {statistics.median(dc) * 1e6:8.2f} us")


if __name__ == "__main__":
    main()
