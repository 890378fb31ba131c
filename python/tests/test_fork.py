"""A cache used on both sides of os.fork(): the child becomes a client of the parent's folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import tiered
from conftest import run_python


def _wait_gone(pid: int, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} (pid {pid}) still running after {limit} s")


def test_writes_from_both_sides_of_a_fork_survive_the_parent_exiting_first(
    folder: Path, tmp_path: Path
) -> None:
    done = tmp_path / "child-done"
    code = f"""
        import os, sys, time, tiered
        c = tiered.Cache({str(folder)!r}, durability="immediate")
        c.set("before", -1)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            for i in range(500):
                c.set(("child", i), i)
            # The rest once the parent has exited, with its cache still open.
            while os.getppid() == parent:
                time.sleep(0.01)
            for i in range(500, 1000):
                c.set(("child", i), i)
            assert c.get("before") == -1
            open({str(done)!r}, "w").write("ok")
            os._exit(0)
        for i in range(1000):
            c.set(("parent", i), i)
        print(pid)
        sys.exit(0)
    """
    child = int(run_python(code, tmp_path).strip())
    deadline = time.monotonic() + 60
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done.exists(), "the child did not finish its writes"
    _wait_gone(child, "the forked child")
    out = run_python(
        f"""
        import tiered
        c = tiered.Cache({str(folder)!r})
        found = sum(c.get((side, i)) == i for side in ("parent", "child") for i in range(1000))
        c.set("third", 1)
        print(found, c.owner_pid(), c.health())
        """,
        tmp_path,
    )
    assert out.split() == ["2000", "None", "healthy"]


@pytest.mark.parametrize("parent_uses_it", [True, False])
def test_batched_writes_of_a_multiprocessing_child_are_kept(
    folder: Path, tmp_path: Path, parent_uses_it: bool
) -> None:
    # multiprocessing ends its children with os._exit, which skips the engine's exit hook: a
    # child that holds the folder (the parent never used the cache) would lose its last
    # batched writes. The package flushes at the child's exit through multiprocessing's own
    # finalizers.
    code = f"""
        import multiprocessing as mp, tiered
        c = tiered.Cache({str(folder)!r})
        if {parent_uses_it}:
            c.set("parent", 1)

        def work(n):
            for i in range(n):
                c.set(("mp", i), i)

        if __name__ == "__main__":
            ctx = mp.get_context("fork")
            p = ctx.Process(target=work, args=(200,))
            p.start(); p.join()
            assert p.exitcode == 0, p.exitcode
    """
    script = tmp_path / "mp_app.py"
    script.write_text(textwrap.dedent(code))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = run_python(
        f"import tiered; c = tiered.Cache({str(folder)!r}); "
        "print(sum(c.get(('mp', i)) == i for i in range(200)), c.get('parent'))",
        tmp_path,
    )
    assert out.split() == ["200", "1" if parent_uses_it else "None"]


def test_a_resource_is_built_again_in_a_forked_child(cache: tiered.Cache) -> None:
    parent = cache.resource("conn", lambda: os.getpid())
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(r)
        os.write(w, str(cache.resource("conn", lambda: os.getpid())).encode())
        os._exit(0)
    os.close(w)
    got = int(os.read(r, 64).decode())
    os.waitpid(pid, 0)
    assert parent == os.getpid()
    assert got == pid


def test_no_thread_starts_before_the_first_use(folder: Path, tmp_path: Path) -> None:
    # Python 3.12+ warns at os.fork() in a process with more than one thread (it counts the
    # OS's threads). An app that makes its cache and decorates at import, then forks (gunicorn
    # --preload), must have none of ours yet.
    out = run_python(
        f"""
        import tiered
        c = tiered.Cache({str(folder)!r})
        @c.memoize
        def f(x):
            return x
        ns = c.namespace("n")
        def threads():
            for line in open("/proc/self/status"):
                if line.startswith("Threads:"):
                    return int(line.split()[1])
        before = threads()
        f(1)
        print(before, threads() > 1)
        """,
        tmp_path,
    )
    assert out.split() == ["1", "True"]


def test_memory_only_entries_of_two_processes_on_one_folder_do_not_evict_each_other(
    folder: Path, tmp_path: Path
) -> None:
    # Each process keeps its own memory-only value (a plot, a connection): a write of the key
    # in another process, memory-only or persisted, must not drop it.
    go = tmp_path / "go"
    code = f"""
        import os, sys, time, tiered
        c = tiered.Cache({str(folder)!r})
        runs = []
        @c.memoize(memory_only=True, name="conn")
        def conn(x):
            runs.append(x)
            return object()
        c.set("warm", 1)  # both processes are on the folder before the calls start
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        for i in range(5):
            conn(1)
            c.set("mine", os.getpid(), memory_only=True)
            time.sleep(0.2)
            assert c.get("mine") == os.getpid(), "another process's write dropped mine"
        print(len(runs))
    """
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    time.sleep(1.0)
    go.write_text("")
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    assert [o.strip() for o, _ in outs] == ["1", "1"]


def test_first_calls_of_a_new_version_in_many_processes_compute_once(
    folder: Path, tmp_path: Path
) -> None:
    # Each process's first call of a version checks it (and clears older versions' entries):
    # two such checks at once used to clear twice, the second discarding the first's value,
    # so that another process computed again (seen in about 1 trial of 7 with 4 processes).
    script = tmp_path / "race.py"
    script.write_text(textwrap.dedent(f"""
        import multiprocessing as mp, os, time, tiered

        def trial(version, barrier, q):
            cache = tiered.Cache({str(folder)!r})

            @cache.memoize(version=version, name="load")
            def load(day):
                q.put("computed")
                time.sleep(0.3)
                return day

            cache.get("warm-up")  # on the folder: its owner or a client
            barrier.wait()
            load("2026-12-05")

        if __name__ == "__main__":
            # This process holds the folder throughout: the trials' processes are its clients
            # (an owner that exits mid-trial takes its leases with it, which is another story).
            holder = tiered.Cache({str(folder)!r})
            holder.set("hold", 1)
            ctx = mp.get_context("fork")
            counts = []
            for version in range(12):
                q, barrier = ctx.Queue(), ctx.Barrier(4)
                procs = [ctx.Process(target=trial, args=(version, barrier, q)) for _ in range(4)]
                for p in procs:
                    p.start()
                for p in procs:
                    p.join(60)
                    assert p.exitcode == 0, p.exitcode
                n = 0
                while not q.empty():
                    q.get()
                    n += 1
                counts.append(n)
            print(counts)
    """))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str([1] * 12)


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_a_pool_left_by_its_with_block_keeps_its_workers_writes(
    folder: Path, tmp_path: Path, start: str
) -> None:
    # `with Pool() as p:` ends its workers with terminate(): SIGTERM. The worker that holds
    # the folder (the parent never used the cache) must commit what it acknowledged first.
    script = tmp_path / "pool_app.py"
    script.write_text(textwrap.dedent(f"""
        import multiprocessing as mp, time, tiered
        cache = tiered.Cache({str(folder)!r})

        def work(i):
            cache.set(("result", i), i * i)
            return i

        if __name__ == "__main__":
            with mp.get_context({start!r}).Pool(4) as p:
                p.map(work, range(200))
    """))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = run_python(
        f"import tiered; c = tiered.Cache({str(folder)!r}); "
        "print(sum(c.get(('result', i)) == i * i for i in range(200)))",
        tmp_path,
    )
    assert out.strip() == "200"


def test_forked_children_that_hold_the_folder_in_turn_keep_every_acknowledged_write(
    folder: Path, tmp_path: Path
) -> None:
    # multiprocessing children end with os._exit: one that holds the folder must stop
    # serving it only after committing what it acknowledged to the others, as an exit would.
    script = tmp_path / "turns.py"
    script.write_text(textwrap.dedent(f"""
        import multiprocessing as mp, os, time, tiered
        cache = tiered.Cache({str(folder)!r})

        def work(n):
            for j in range(7):
                cache.set((n, j), os.getpid())
                time.sleep(0.005)

        if __name__ == "__main__":
            ctx = mp.get_context("fork")
            running = []
            for n in range(40):
                p = ctx.Process(target=work, args=(n,))
                p.start()
                running.append(p)
                if len(running) == 4:
                    running.pop(0).join()
            for p in running:
                p.join()
    """))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    out = run_python(
        f"import tiered; c = tiered.Cache({str(folder)!r}); "
        "print(sum(c.get((n, j)) is not None for n in range(40) for j in range(7)))",
        tmp_path,
    )
    assert out.strip() == "280"
