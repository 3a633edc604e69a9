"""The playground server under heavy load, on loopback: is it still answering, bounded and right?

Starts its own `denoiselab serve` on 127.0.0.1 (a free port, a temporary runs folder with one
small trained spiral run), then:

1. idle: resident memory (RSS) of the server and /api/health latency with nothing else running;
2. references: one heavy request alone per seed (the largest a request may be: frames, n = 1000
   points, 200 steps: 4 panels x 200 x 1000 points), its final samples kept;
3. load, ``--rounds`` times: ``--clients`` (default 50) heavy requests at once (seeds in turn),
   while /api/health is polled every 20 ms and the server's RSS every 50 ms; every 200 answer's
   final samples are compared with the reference of its seed, every 503 must carry Retry-After;
4. after: RSS once the load is over (after ``--settle`` seconds).

It prints one table (idle against load side by side) and the targets of issue 16 with PASS/FAIL:
health p95 < 100 ms under load, 503 answered within 1 s, RSS within 500 MB of idle during load and
within 100 MB of it afterwards, every answered request identical to the same request alone.
``--before SRC`` first runs the same measurement against the package in SRC (e.g. the source
before issue 16, extracted with ``git archive``) and prints both side by side.  Bounded:
--clients <= 100, --rounds <= 10, health probes time out after 30 s, and each measurement stops
starting rounds after --max-seconds.

    python benchmarks/serve_load.py                       # 50 clients, 3 rounds: about a minute
    python benchmarks/serve_load.py --clients 8 --rounds 1   # smoke run
    mkdir -p /tmp/before && git archive fdc4cdd src | tar -x -C /tmp/before
    python benchmarks/serve_load.py --rounds 1 --before /tmp/before/src   # + the code before, ~4 min
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HOST = "127.0.0.1"  # loopback only: nothing leaves this machine
HEAVY = {"sampler": "ddim", "steps": 200, "n": 1000, "frames": True}  # n x steps = MAX_FRAME_VALUES
SEEDS = (0, 1, 2, 3, 4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def post(url: str, body: dict, timeout: float = 120.0) -> tuple:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, json.loads(r.read()), time.perf_counter() - t0
    except urllib.error.HTTPError as e:  # headers: case-insensitive (the server sends lower case)
        return e.code, e.headers, json.loads(e.read() or b"{}"), time.perf_counter() - t0


def get_s(url: str, timeout: float = 30.0) -> float:
    """Seconds until ``url`` answered; a probe that times out counts as ``timeout`` seconds."""
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            r.read()
    except TimeoutError:
        return timeout
    return time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else float("nan")


def train_run(runs: Path, steps: int) -> None:
    from denoiselab import load_config, train

    cfg = load_config("spiral", [f"train.steps={steps}", "train.threads=1", "data.n=2000"])
    train(cfg, runs / "spiral", progress=False, log=lambda *_: None)


def start_server(runs: Path, port: int, src: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if src is not None:
        env["PYTHONPATH"] = src
    code = (
        "import argparse, sys\n"
        "from denoiselab.serve import add_serve_arguments, run_serve\n"
        "if __name__ == '__main__':\n"
        "    a = add_serve_arguments(argparse.ArgumentParser()).parse_args(sys.argv[1:])\n"
        "    sys.exit(run_serve(a))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--host", HOST, "--port", str(port), "--runs", str(runs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            get_s(f"http://{HOST}:{port}/api/health")
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {proc.stderr.read() if proc.poll() is not None else 'timeout'}") from None
            time.sleep(0.2)


def health_latencies(url: str, seconds: float) -> list[float]:
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        out.append(get_s(url))
        time.sleep(0.02)
    return out


def one_round(base: str, pid: int, clients: int, refs: dict) -> dict:
    stop = threading.Event()
    health: list[float] = []
    rss: list[float] = []

    def poll_health():
        while not stop.is_set():
            health.append(get_s(f"{base}/api/health"))
            time.sleep(0.02)

    def poll_rss():
        while not stop.is_set():
            rss.append(rss_mb(pid))
            time.sleep(0.05)

    pollers = [threading.Thread(target=poll_health), threading.Thread(target=poll_rss)]
    for t in pollers:
        t.start()
    barrier = threading.Barrier(clients)

    def call(i: int):
        seed = SEEDS[i % len(SEEDS)]
        barrier.wait()
        status, headers, body, seconds = post(f"{base}/api/runs/spiral/sample", {**HEAVY, "seed": seed})
        same = status == 200 and body["samples"] == refs[seed]
        return status, headers.get("Retry-After"), seconds, same

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(call, range(clients)))
    wall = time.perf_counter() - t0
    stop.set()
    for t in pollers:
        t.join()
    ok = [r for r in results if r[0] == 200]
    busy = [r for r in results if r[0] == 503]
    return {
        "wall_s": wall,
        "ok": len(ok),
        "busy": len(busy),
        "other": [r[0] for r in results if r[0] not in (200, 503)],
        "ok_correct": sum(r[3] for r in ok),
        "busy_max_s": max((r[2] for r in busy), default=0.0),
        "busy_retry_after": all(r[1] is not None for r in busy),
        "ok_median_s": statistics.median(r[2] for r in ok) if ok else float("nan"),
        "health": health,
        "rss_peak": max(rss) if rss else float("nan"),
    }


def measure(args, src: str | None) -> dict:
    """One server (the package in ``src``, or this one), idle, references, load rounds, after."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        runs = Path(tmp) / "runs"
        train_run(runs, args.train_steps)
        port = free_port()
        base = f"http://{HOST}:{port}"
        proc = start_server(runs, port, src)
        try:
            refs, alone_s = {}, []
            for seed in SEEDS:
                status, _, body, seconds = post(f"{base}/api/runs/spiral/sample", {**HEAVY, "seed": seed})
                assert status == 200, body
                refs[seed] = body["samples"]
                alone_s.append(seconds)
            time.sleep(1.0)
            idle_rss = rss_mb(proc.pid)
            idle_health = health_latencies(f"{base}/api/health", 2.0)
            rounds = []
            for _ in range(args.rounds):
                if time.monotonic() - started > args.max_seconds:
                    print(f"stopping early: --max-seconds {args.max_seconds} reached", file=sys.stderr)
                    break
                rounds.append(one_round(base, proc.pid, args.clients, refs))
            time.sleep(args.settle)
            after_rss = rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    load_health = [h for r in rounds for h in r["health"]]
    ok = sum(r["ok"] for r in rounds)
    correct = sum(r["ok_correct"] for r in rounds)
    other = [c for r in rounds for c in r["other"]]
    busy_max = max(r["busy_max_s"] for r in rounds)
    retry = all(r["busy_retry_after"] for r in rounds)
    peak = max(r["rss_peak"] for r in rounds)
    checks = [
        ("health p95 < 100 ms under load", pct(load_health, 0.95) < 0.1),
        ("503 within 1 s, with Retry-After", busy_max < 1.0 and retry),
        ("RSS within 500 MB of idle during load", peak - idle_rss < 500),
        ("RSS within 100 MB of idle afterwards", after_rss - idle_rss < 100),
        ("every answered request identical to the same request alone", ok == correct and not other),
    ]
    return {
        "src": src or "this checkout", "rounds": rounds, "alone_s": alone_s, "idle_rss": idle_rss, "after_rss": after_rss,
        "peak_rss": peak, "idle_health": idle_health, "load_health": load_health, "ok": ok, "correct": correct,
        "busy": sum(r["busy"] for r in rounds), "busy_max": busy_max, "retry": retry, "other": other,
        "ok_median": statistics.median(r["ok_median_s"] for r in rounds), "checks": checks,
    }  # fmt: skip


def report(results: list[dict], args) -> None:
    ms = lambda v: f"{1000 * v:.1f} ms"  # noqa: E731
    print(f"server: denoiselab serve on {HOST}, torch threads as run_serve sets them; {os.cpu_count()} CPU cores")
    print(f"heavy request: {json.dumps(HEAVY)} (seeds {SEEDS[0]}..{SEEDS[-1]} in turn)")
    print(f"load: {args.rounds} round(s) of {args.clients} requests at once; health probed every 20 ms (30 s timeout)\n")
    print("| | " + " | ".join(r["src"] for r in results) + " |")
    print("|---|" + "---|" * len(results))
    rows = [
        ("heavy request alone (median)", lambda r: f"{statistics.median(r['alone_s']):.2f} s"),
        ("/api/health p50 idle / load", lambda r: f"{ms(pct(r['idle_health'], 0.5))} / {ms(pct(r['load_health'], 0.5))}"),
        ("/api/health p95 idle / load", lambda r: f"{ms(pct(r['idle_health'], 0.95))} / {ms(pct(r['load_health'], 0.95))}"),
        ("/api/health max under load", lambda r: ms(max(r["load_health"]))),
        ("server RSS idle / peak / after", lambda r: f"{r['idle_rss']:.0f} / {r['peak_rss']:.0f} / {r['after_rss']:.0f} MB"),
        ("answered 200 (identical to alone)", lambda r: f"{r['ok']} ({r['correct']}), median {r['ok_median']:.2f} s"),
        ("answered 503: count, slowest", lambda r: f"{r['busy']}, {r['busy_max']:.3f} s"),
        ("Retry-After on every 503", lambda r: str(r["retry"])),
        ("other answers", lambda r: str(r["other"] or "none")),
    ]
    for name, cell in rows:
        print(f"| {name} | " + " | ".join(cell(r) for r in results) + " |")
    for r in results:
        print(f"\n{r['src']}:")
        for what, passed in r["checks"]:
            print(f"{'PASS' if passed else 'FAIL'}  {what}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=50, help="heavy requests at once (default 50, at most 100)")
    p.add_argument("--rounds", type=int, default=3, help="load rounds (default 3, at most 10)")
    p.add_argument("--train-steps", type=int, default=300, help="training steps of the served run (default 300)")
    p.add_argument("--settle", type=float, default=3.0, help="seconds after the load before the last RSS reading")
    p.add_argument("--max-seconds", type=float, default=600.0, help="start no new round after this long (default 600)")
    p.add_argument("--before", metavar="SRC", help="first measure the package in SRC (a src/ folder) the same way")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if not 1 <= args.clients <= 100 or not 1 <= args.rounds <= 10:
        p.error("--clients must be 1..100 and --rounds 1..10")
    results = ([measure(args, args.before)] if args.before else []) + [measure(args, None)]
    report(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps([{k: v for k, v in r.items()} for r in results], indent=1, default=str))
    return 0 if all(passed for _, passed in results[-1]["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
