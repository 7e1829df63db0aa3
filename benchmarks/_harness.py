"""Plumbing shared by the benchmark scripts: one subprocess per case, timeouts, RSS, tables.

Every benchmark script follows the same pattern.  The parent process prepares the
data once (into a scratch directory), then runs each *case* in its own worker
subprocess (the same script re-invoked with ``--worker CASE``), so that

- each case has its own peak resident memory (``VmHWM``), and a baseline taken
  after the data is loaded, before the case starts;
- a case that runs past ``--timeout`` seconds is killed (by its own process id)
  without losing the others;
- import time is outside the timed region.

A worker repeats its case ``--reps`` times and the parent reports the minimum wall
time (stopping after one repetition when that already took ``--slow-after``
seconds).  The case returns a result array (saved for the accuracy comparison) and
a dict of named sub-timings ("parts").
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from typing import Callable

import numpy as np

# ----------------------------------------------------------------------------- memory


def _proc_status_mib(field: str, pid: int | str = "self") -> float:
    """A ``kB`` field of ``/proc/<pid>/status`` in MiB (NaN if unavailable)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def rss_mib() -> float:
    """Current resident set size of this process."""
    return _proc_status_mib("VmRSS")


def peak_rss_mib(pid: int | str = "self") -> float:
    """Peak resident set size ("high water mark") of a process."""
    return _proc_status_mib("VmHWM", pid)


# ----------------------------------------------------------------------------- timing


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (busy-waiting BLAS included)."""
    return time.process_time()


class Parts:
    """Named wall-clock sub-timings: ``with parts("hessian"): ...``."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


# ----------------------------------------------------------------------------- CLI


def add_common_arguments(parser: argparse.ArgumentParser, *, reps: int = 3,
                         timeout: float = 600.0) -> None:
    """Options every benchmark script shares (worker plumbing is hidden)."""
    parser.add_argument("--reps", type=int, default=reps,
                        help="repetitions per case; the minimum is reported (default %(default)s)")
    parser.add_argument("--slow-after", type=float, default=60.0,
                        help="stop after one repetition when it took longer than this (s)")
    parser.add_argument("--timeout", type=float, default=timeout,
                        help="kill a case whose repetition runs longer than this (s)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="BLAS / OpenMP / torch threads in each worker (default: all cores)")
    parser.add_argument("--cases", default=None,
                        help="comma-separated subset of cases to run (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scratch", default=None,
                        help="directory for the shared data and per-case results")
    parser.add_argument("--fresh", action="store_true",
                        help="regenerate the data and refit even if the scratch has them")
    parser.add_argument("--profile", action="store_true",
                        help="also run skinfluence's case once under cProfile and print "
                             "where its time goes")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--profile-worker", action="store_true", help=argparse.SUPPRESS)


def default_scratch(name: str) -> str:
    return os.path.join(tempfile.gettempdir(), "skinfluence-bench", name)


def machine_summary(threads: int) -> str:
    """One line saying where the figures come from (CPU, BLAS, load)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = "?"
    try:
        from threadpoolctl import threadpool_info

        blas = "; ".join(
            f"{i['internal_api']} {i.get('version')} ({os.path.basename(i['filepath'])[:28]})"
            for i in threadpool_info() if i["user_api"] == "blas"
        )
    except Exception:  # noqa: BLE001 - informational only
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    try:
        import skinfluence

        engine = f"skinfluence from {os.path.dirname(skinfluence.__file__)}, "
    except ImportError:
        engine = "skinfluence not importable, "
    return (f"{engine}python {platform.python_version()} ({sys.executable}), numpy {np.__version__}, "
            f"{os.cpu_count()} cores of {cpu}, {threads} threads per worker, BLAS: {blas}; "
            f"load average at start: {load}")


# ----------------------------------------------------------------------------- worker side


def worker_main(args, case_fn: Callable[[str, argparse.Namespace], Callable[[], dict]]) -> None:
    """Run one case ``--reps`` times and report each repetition as a JSON line.

    ``case_fn(name, args)`` loads what the case needs (untimed) and returns a
    callable; each call of it is one timed repetition returning
    ``{"result": array or None, "parts": {...}, "info": {...}}``.
    """
    status_path = os.path.join(args.scratch, f"status_{args.worker}.jsonl")
    status = open(status_path, "a", buffering=1)

    def emit(**record):
        record["time"] = time.time()
        status.write(json.dumps(record, default=float) + "\n")

    try:
        run_once = case_fn(args.worker, args)
        emit(event="ready", rss_mib=rss_mib(), peak_rss_mib=peak_rss_mib())
        if args.profile_worker:
            _profile_once(run_once, args)
            emit(event="profiled")
            return
        best = float("inf")
        for rep in range(args.reps):
            emit(event="start", rep=rep)
            cpu_start = _cpu_seconds()
            start = time.perf_counter()
            out = run_once()
            cpu = _cpu_seconds() - cpu_start
            # a case may time only part of its repetition (e.g. not a refit that resets a
            # cache): it then returns its own "total" (wall) and "cpu" seconds
            total = out.get("total", time.perf_counter() - start)
            cpu = out.get("cpu", cpu)
            result = out.get("result")
            if result is not None and total <= best:
                np.save(os.path.join(args.scratch, f"result_{args.worker}.npy"),
                        np.asarray(result, dtype=np.float64))
            best = min(best, total)
            emit(event="done", rep=rep, total=total, cpu=cpu, parts=out.get("parts", {}),
                 info=out.get("info", {}), peak_rss_mib=peak_rss_mib())
            del out, result
            if total > args.slow_after:
                break
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, then re-raised
        emit(event="error", error=f"{type(exc).__name__}: {exc}"[:400],
             traceback=traceback.format_exc()[-2000:])
        raise
    finally:
        status.close()


def _profile_once(run_once: Callable[[], dict], args) -> None:
    """One repetition under cProfile (after an untimed warm-up run, so one-time
    imports and caches are not in it); the top functions go to a text file."""
    run_once()
    # CPU time of all threads: robust to other processes competing for the cores
    profiler = cProfile.Profile(_cpu_seconds)
    profiler.enable()
    start = time.perf_counter()
    out = run_once()
    total = time.perf_counter() - start
    profiler.disable()
    buf = io.StringIO()
    buf.write(f"case {args.worker}: {total:.3f} s wall under cProfile ({args.threads} threads); "
              "profile times below are CPU seconds summed over threads; parts (wall) "
              + ", ".join(f"{k} {v:.3f} s" for k, v in out.get("parts", {}).items()) + "\n")
    stats = pstats.Stats(profiler, stream=buf)
    stats.sort_stats("tottime").print_stats(18)
    stats.sort_stats("cumulative").print_stats(25)
    with open(os.path.join(args.scratch, f"profile_{args.worker}.txt"), "w") as f:
        f.write(buf.getvalue())


# ----------------------------------------------------------------------------- parent side


def _read_status(path: str) -> list[dict]:
    records = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # a line being written when the worker was killed
    return records


def launch(script: str, case: str, args, *, python: str | None = None,
           extra_env: dict | None = None, profile: bool = False) -> dict:
    """Run one case in a worker subprocess; return its timings, RSS and fate."""
    status_path = os.path.join(args.scratch, f"status_{case}.jsonl")
    if os.path.exists(status_path):
        os.remove(status_path)
    for stale in (f"result_{case}.npy",):
        path = os.path.join(args.scratch, stale)
        if os.path.exists(path):
            os.remove(path)
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    env.update(extra_env or {})
    argv = [a for a in sys.argv[1:] if a != "--profile"]
    cmd = [python or sys.executable, script, *argv, "--scratch", args.scratch,
           "--worker", case]
    if profile:
        cmd.append("--profile-worker")
    log_path = os.path.join(args.scratch, f"log_{case}.txt")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        killed = None
        while proc.poll() is None:
            records = _read_status(status_path)
            starts = [r for r in records if r["event"] == "start"]
            dones = [r for r in records if r["event"] == "done"]
            running = (time.time() - starts[-1]["time"]) if len(starts) > len(dones) else 0.0
            if running > args.timeout:
                killed = {"rep": starts[-1]["rep"], "after_s": running,
                          "peak_rss_mib": peak_rss_mib(proc.pid)}
                proc.kill()  # the worker we started, by its own pid
                proc.wait()
                break
            time.sleep(0.2)
    records = _read_status(status_path)
    ready = [r for r in records if r["event"] == "ready"]
    reps = [r for r in records if r["event"] == "done"]
    errors = [r for r in records if r["event"] == "error"]
    run = {"case": case, "killed": killed, "reps": reps, "returncode": proc.returncode,
           "baseline_rss_mib": ready[0]["rss_mib"] if ready else float("nan"),
           "error": errors[0]["error"] if errors else None}
    if reps:
        best = min(reps, key=lambda r: r["total"])
        run.update(best=best["total"], cpu=min(r["cpu"] for r in reps),
                   parts=best["parts"], info=best["info"],
                   all_totals=[r["total"] for r in reps],
                   peak_rss_mib=max(r["peak_rss_mib"] for r in reps))
    elif killed:
        run["peak_rss_mib"] = killed["peak_rss_mib"]
    if not reps and not killed and not errors and not profile:
        with open(log_path, errors="replace") as f:
            run["error"] = f"rc={proc.returncode}: " + f.read()[-400:].replace("\n", " | ")
    if profile:
        path = os.path.join(args.scratch, f"profile_{case}.txt")
        run["profile"] = open(path).read() if os.path.exists(path) else (
            open(log_path, errors="replace").read()[-2000:])
    return run


def load_result(args, case: str) -> np.ndarray | None:
    path = os.path.join(args.scratch, f"result_{case}.npy")
    return np.load(path) if os.path.exists(path) else None


def accuracy(result: np.ndarray, reference: np.ndarray) -> dict:
    """Max relative error (max |diff| / max |ref|) and Pearson correlation."""
    result = np.asarray(result, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if result.shape != reference.shape:
        return {"max_rel": float("nan"), "pearson": float("nan")}
    diff = np.max(np.abs(result - reference)) / max(np.max(np.abs(reference)), 1e-300)
    pearson = np.corrcoef(result.ravel(), reference.ravel())[0, 1]
    return {"max_rel": float(diff), "pearson": float(pearson)}


def fmt_seconds(x: float | None) -> str:
    if x is None or not np.isfinite(x):
        return "-"
    return f"{x * 1000:.0f} ms" if x < 0.1 else f"{x:.2f} s"


def fmt_parts(parts: dict) -> str:
    return ", ".join(f"{k} {fmt_seconds(v)}" for k, v in parts.items())


def outcome(run: dict, timeout: float) -> str:
    """The wall-time cell: the minimum (and the minimum CPU time), or why there is none."""
    if run.get("best") is not None:
        text = f"{fmt_seconds(run['best'])} [cpu {fmt_seconds(run['cpu'])}]"
        if run["killed"]:
            text += f" (rep {run['killed']['rep']} killed > {timeout:.0f} s)"
        return text
    if run["killed"]:
        return f"> {timeout:.0f} s (killed)"
    return "failed: " + (run.get("error") or "?")[:160]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def print_profiles(runs: list[dict]) -> None:
    for run in runs:
        if run.get("profile"):
            print(f"\n----- cProfile of {run['case']} -----\n{run['profile']}")


def cached_prepare(args, key: dict, prepare_fn: Callable[[], dict]) -> dict:
    """Run ``prepare_fn`` (data generation and fit) unless the scratch directory already
    holds its output for the same ``key``; returns what it returned (e.g. fit time).

    Reuse is announced, and ``--fresh`` forces a new preparation.
    """
    path = os.path.join(args.scratch, "prepared.json")
    key = json.loads(json.dumps(key, default=str))
    if not getattr(args, "fresh", False) and os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved.get("key") == key:
            print(f"reusing data and fit from {args.scratch} (pass --fresh to redo)", flush=True)
            return saved["meta"]
    meta = prepare_fn()
    with open(path, "w") as f:
        json.dump({"key": key, "meta": meta}, f, default=float)
    return meta


def start(args, case_fn: Callable[[str, argparse.Namespace], Callable[[], dict]],
          scratch_name: str) -> str | None:
    """The opening every benchmark's ``main`` shares.

    Sets the default scratch directory; in a worker process, runs the requested case and
    returns None (the caller then returns); in the parent, creates the scratch
    directory and prints and returns the machine summary.
    """
    if args.scratch is None:
        args.scratch = default_scratch(scratch_name)
    if args.worker:
        worker_main(args, case_fn)
        return None
    os.makedirs(args.scratch, exist_ok=True)
    machine = machine_summary(args.threads)
    print(machine, flush=True)
    return machine


def run_cases(script: str, cases: list[str], args, *, width: int = 18,
              python_for: Callable[[str], str | None] | None = None) -> dict:
    """Launch each case in its own subprocess (:func:`launch`), printing one line per case."""
    runs = {}
    for case in cases:
        python = python_for(case) if python_for is not None else None
        runs[case] = launch(script, case, args, python=python)
        print(f"{case:{width}s} {outcome(runs[case], args.timeout):>24s}  "
              f"{fmt_parts(runs[case].get('parts', {}))}", flush=True)
    return runs
