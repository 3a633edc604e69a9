"""Background training jobs for the playground.

Each job trains in its own process (multiprocessing, ``spawn``): a crash, an out-of-memory kill
or a stuck step in one job cannot take the server down, the job sets its own torch thread
count without touching the server's, and the server's request threads never wait on the
training loop's GIL.  The child reports over a queue (progress, losses, the end); a monitor
thread in the server folds the reports into the job's state, which lives in the server, so a
job goes on (and can be watched again) after the page that started it is closed.

Cancelling sets an event that the child checks in ``train``'s ``on_step`` hook; it raises
KeyboardInterrupt there, which makes ``train`` write a resumable checkpoint and mark the run
``interrupted`` (exactly as Ctrl-C does on the command line).

A child never outlives its server: a watchdog thread in the child polls its parent's pid every
PARENT_POLL_S (when the server dies, even by SIGKILL, the child is re-parented and ``getppid``
changes).  It then stops at a resumable checkpoint as a cancel does (``denoiselab train --resume``
continues it), or exits at once when training is already over.  Polling the parent works on
every platform; Linux's PR_SET_PDEATHSIG is not used because it fires when the *thread* that
started the child ends (a request's worker thread), not the server.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..runs.folder import RunFolder

# Job states.  "finishing": the weights are written and usable; metrics and figures are drawn.
ACTIVE = ("starting", "running", "finishing")
FINAL = ("complete", "trained", "cancelled", "failed")
REPORT_EVERY_S = 0.2  # how often the child sends its new losses
JOIN_TIMEOUT_S = 10.0  # on shutdown: how long a cancelled child gets to write its checkpoint
PARENT_POLL_S = 0.5  # how often a training child checks that its server is alive
ORPHAN_GRACE_S = 30.0  # how long an orphaned child may take to write its checkpoint


def job_threads() -> int:
    """Torch threads for one training job: half the cores, so the page stays responsive."""
    return max(1, (os.cpu_count() or 2) // 2)


class JobError(Exception):
    """A job that cannot be started or changed; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


@dataclass
class Job:
    id: str
    run: str  # run folder name inside the runs directory
    data: str
    steps: int
    status: str = "starting"
    step: int = 0
    losses: list[float] = field(default_factory=list)
    message: str = ""
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None  # first optimiser step
    finished: float | None = None
    # The child's own clock: seconds spent in optimiser steps since ``first_step`` (not counting
    # start-up, checkpoints between reports are included, metrics and figures are not).
    train_seconds: float = 0.0
    first_step: int = 0
    trained_at: float | None = None  # when training ended (metrics and figures may follow)
    usable_after_s: float | None = None  # seconds from the request until the weights were usable
    cancel_requested: bool = False

    def to_dict(self, since: int | None = None) -> dict:
        now = time.time()
        elapsed = (self.finished or now) - self.created
        rate = None
        if self.train_seconds > 0 and self.step > self.first_step:
            rate = (self.step - self.first_step) / self.train_seconds  # training only: never metrics time
        eta = (self.steps - self.step) / rate if rate and self.status in ("starting", "running") else None
        out = {
            "id": self.id,
            "run": self.run,
            "data": self.data,
            "status": self.status,
            "active": self.status in ACTIVE,
            "usable": self.status in ("finishing", "complete", "trained"),
            "step": self.step,
            "steps": self.steps,
            "progress": self.step / self.steps if self.steps else 0.0,
            "elapsed_s": round(elapsed, 2),
            "steps_per_s": round(rate, 1) if rate else None,
            "eta_s": round(eta, 1) if eta is not None else None,
            "usable_after_s": self.usable_after_s,
            "train_s": round(self.train_seconds, 2),
            "finishing_s": round((self.finished or now) - self.trained_at, 1) if self.trained_at is not None else None,
            "message": self.message,
            "error": self.error,
            "cancel_requested": self.cancel_requested,
            "loss_count": len(self.losses),
        }
        if since is not None:
            since = max(0, min(int(since), len(self.losses)))
            out["losses_from"] = since
            out["losses"] = self.losses[since:]
        return out


def _watch_parent(parent: int, orphaned: threading.Event, training: threading.Event) -> None:
    """The child's watchdog: when the server dies, stop at a checkpoint (or exit when done)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    orphaned.set()  # on_step raises KeyboardInterrupt: a resumable checkpoint, then exit
    if training.is_set():
        deadline = time.monotonic() + ORPHAN_GRACE_S
        while training.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
    os._exit(0 if not training.is_set() else 1)


def finish_run(run_dir: Path) -> str:
    """What `denoiselab train` does after training (runs.complete_run): metrics, figures,
    status "complete".  Returns the metrics summary."""
    from ..runs import complete_run

    _, metrics = complete_run(run_dir, log=lambda *_: None)
    return metrics.summary()


def _train_worker(run_dir: str, cfg, threads: int, finish: bool, reports, cancel, parent: int) -> None:
    """The child process: train ``cfg`` into ``run_dir``, reporting to ``reports``."""
    import torch

    from ..training import TrainingInterrupted, train

    torch.set_num_threads(threads)
    run_path = Path(run_dir)
    orphaned, training = threading.Event(), threading.Event()
    training.set()
    threading.Thread(target=_watch_parent, args=(parent, orphaned, training), name="watch-server", daemon=True).start()
    pending: list[float] = []
    last = [time.monotonic(), 0]
    clock: list = [None, 0]  # (monotonic time of the first step seen, its step number)

    def flush(step: int) -> None:
        if pending:
            seconds = time.monotonic() - clock[0] if clock[0] is not None else 0.0
            reports.put(("progress", step, {"losses": list(pending), "seconds": seconds, "first_step": clock[1]}))
            pending.clear()

    def on_step(step: int, loss: float) -> None:
        if clock[0] is None:
            clock[:] = [time.monotonic(), step]
        pending.append(float(loss))
        last[1] = step
        now = time.monotonic()
        if now - last[0] >= REPORT_EVERY_S:
            last[0] = now
            flush(step)
        if cancel.is_set() or orphaned.is_set():
            flush(step)
            raise KeyboardInterrupt

    reports.put(("running", 0, None))
    floors = None
    if finish:  # the metrics' floors, measured on the idle core while training (as `train` does)
        from ..runs import floors_in_background

        floors = floors_in_background(cfg)
    try:
        train(cfg, run_path, progress=False, log=lambda msg: reports.put(("log", 0, str(msg))), on_step=on_step)
    except TrainingInterrupted as exc:
        flush(last[1])
        reports.put(("cancelled", exc.step, f"cancelled at step {exc.step}; the run keeps a resumable checkpoint"))
        return
    except BaseException as exc:  # noqa: BLE001 - any failure ends this job only
        flush(last[1])
        message = f"{type(exc).__name__}: {exc}"
        RunFolder(run_path).mark_failed(message, last[1])  # with the step training got to
        reports.put(("failed", last[1], message))
        return
    finally:
        training.clear()
        if floors is not None:
            floors.stop()
    flush(last[1])
    if not finish:
        reports.put(("trained", last[1], "trained; the model is usable"))
        return
    reports.put(("usable", last[1], "trained; the model is usable now, computing metrics and figures"))
    try:
        summary = finish_run(run_path)
    except BaseException as exc:  # noqa: BLE001 - the weights are fine; only the extras failed
        reports.put(("trained", last[1], f"trained; metrics/figures failed ({type(exc).__name__}: {exc})"))
        return
    reports.put(("complete", last[1], summary))


class JobManager:
    """Starts, tracks and cancels training jobs; at most ``max_jobs`` active at a time."""

    def __init__(self, runs_dir: Path, *, max_jobs: int = 1, threads: int | None = None, finish: bool = True):
        self.runs_dir = Path(runs_dir)
        self.max_jobs = max_jobs
        self.threads = threads or job_threads()
        self.finish = finish
        self._jobs: dict[str, Job] = {}
        self._procs: dict[str, tuple] = {}  # id -> (process, cancel event)
        self._lock = threading.Lock()
        self._ctx = mp.get_context("spawn")

    # -- queries ----------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise JobError(f"job: no such job {job_id!r}", 404)
        return job

    def snapshot(self, job_id: str, since: int | None = None) -> dict:
        job = self.get(job_id)
        with self._lock:
            return job.to_dict(since)

    def list(self) -> list[dict]:
        with self._lock:
            return [job.to_dict() for job in sorted(self._jobs.values(), key=lambda j: -j.created)]

    def active(self) -> list[Job]:
        with self._lock:
            return [job for job in self._jobs.values() if job.status in ACTIVE]

    def busy_runs(self) -> set[str]:
        with self._lock:
            return {job.run for job in self._jobs.values() if job.status in ("starting", "running")}

    # -- changes ----------------------------------------------------------------------------
    def start(self, run: str, cfg, *, data: str | None = None) -> dict:
        """Train ``cfg`` into runs_dir/run in a new process; returns the job's state."""
        run_dir = self.runs_dir / run
        with self._lock:
            active = [j for j in self._jobs.values() if j.status in ACTIVE]
            if len(active) >= self.max_jobs:
                names = ", ".join(j.run for j in active)
                raise JobError(
                    f"busy: {len(active)} training job(s) running ({names}); at most {self.max_jobs} at a time "
                    "on this machine. Wait for it or cancel it.",
                    429,
                )
            if any(j.run == run for j in active):
                raise JobError(f"name: a job is already training {run!r}", 409)
            if RunFolder(run_dir).holds_anything():
                raise JobError(f"name: a run called {run!r} already exists; choose another name", 409)
            job = Job(uuid.uuid4().hex[:12], run, data or cfg.data.name, cfg.train.steps)
            self._jobs[job.id] = job
            reports = self._ctx.Queue()
            cancel = self._ctx.Event()
            proc = self._ctx.Process(
                target=_train_worker,
                args=(str(run_dir), cfg, self.threads, self.finish, reports, cancel, os.getpid()),
                name=f"denoiselab-train-{job.id}",
                daemon=True,
            )
            self._procs[job.id] = (proc, cancel)
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            proc.start()
        except Exception as exc:  # noqa: BLE001 - e.g. no processes left
            with self._lock:
                job.status, job.error, job.finished = "failed", f"cannot start the training process: {exc}", time.time()
            raise JobError(job.error, 500) from None
        threading.Thread(target=self._monitor, args=(job, proc, reports), name=f"monitor-{job.id}", daemon=True).start()
        return self.snapshot(job.id, since=0)

    def cancel(self, job_id: str) -> dict:
        job = self.get(job_id)
        with self._lock:
            if job.status in FINAL:
                raise JobError(f"job: {job_id} has already ended ({job.status})", 409)
            job.cancel_requested = True
            job.message = "cancelling: writing a checkpoint"
            _, event = self._procs[job_id]
        event.set()
        return self.snapshot(job_id)

    def shutdown(self, timeout: float = JOIN_TIMEOUT_S) -> None:
        """Cancel every active job and wait for its checkpoint; kill what does not stop."""
        with self._lock:  # every live process, also one that has reported its end and is exiting
            procs = [(self._jobs[i], p, e) for i, (p, e) in self._procs.items() if p.is_alive()]
        for _, _, event in procs:
            event.set()
        deadline = time.monotonic() + timeout
        for _, proc, _ in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)

    # -- the monitor thread -------------------------------------------------------------------
    def _apply(self, job: Job, kind: str, step: int, payload) -> None:
        with self._lock:
            if kind == "running":
                job.status = "running"
                job.message = "training"
            elif kind == "progress":
                if job.started is None:
                    job.started = time.time()
                job.losses.extend(payload["losses"])
                job.train_seconds, job.first_step = payload["seconds"], payload["first_step"]
                job.step = step
            elif kind == "log":
                job.message = payload
            elif kind in ("usable", "trained"):
                job.step = max(job.step, step)
                job.status = "finishing" if kind == "usable" else "trained"
                job.message = payload
                if job.usable_after_s is None:
                    job.usable_after_s = round(time.time() - job.created, 2)
                if job.trained_at is None:
                    job.trained_at = time.time()
                if kind == "trained":
                    job.finished = time.time()
            elif kind == "complete":
                job.status, job.message, job.finished = "complete", payload, time.time()
            elif kind == "cancelled":
                job.status, job.message, job.finished = "cancelled", payload, time.time()
                job.step = max(job.step, step)
            elif kind == "failed":
                job.status, job.error, job.finished = "failed", payload, time.time()
                job.message = "failed"

    def _monitor(self, job: Job, proc, reports) -> None:
        try:
            while True:
                try:
                    kind, step, payload = reports.get(timeout=0.5)
                except queue_module.Empty:
                    if not proc.is_alive():
                        break
                    continue
                self._apply(job, kind, step, payload)
            # The child has exited: read what it sent last, then settle the job's state.
            while True:
                try:
                    kind, step, payload = reports.get(timeout=0.2)
                except (queue_module.Empty, EOFError, OSError):
                    break
                self._apply(job, kind, step, payload)
            proc.join(1.0)
            with self._lock:
                if job.status == "finishing":  # exited while drawing figures: the weights stand
                    job.status, job.finished = "trained", time.time()
                elif job.status not in FINAL:
                    job.status, job.finished = "failed", time.time()
                    job.error = f"the training process exited unexpectedly (exit code {proc.exitcode})"
                    job.message = "failed"
            if job.status == "failed" and proc.exitcode not in (0, None):
                RunFolder(self.runs_dir / job.run).mark_failed(job.error or "failed", job.step)
        except Exception:  # noqa: BLE001 - the monitor must never take the server down
            with self._lock:
                job.status, job.finished = "failed", time.time()
                job.error = "monitor error: " + traceback.format_exc(limit=2)
        finally:
            try:
                reports.close()
            except Exception:  # noqa: BLE001
                pass
