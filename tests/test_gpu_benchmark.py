"""The prepared GPU benchmark (benchmarks/gpu_throughput.py) runs where no GPU is: on a CPU it
times the recipe's own training step and a guided DPM-Solver++ draw, and skips mixed precision
(a GPU option) in a line that says so.  Its numbers are for BENCHMARKS.md, not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_throughput.py"


def test_the_gpu_benchmark_runs_on_a_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    args = ["--recipe", "digits", "--batch", "16", "--steps", "2", "--warmup", "1", "--samples", "8", "--repeats", "1", "--json", str(out)]
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "bf16: skipped on a CPU" in done.stdout
    found = json.loads(out.read_text())
    (row,) = found["rows"]
    assert (row["device"], row["precision"], row["train_batch"], row["sample_n"], row["sample_evaluations"]) == ("cpu", "fp32", 16, 8, 40)
    assert abs(row["train_steps_a_second"] * row["train_seconds_a_step"] - 1) < 1e-9 and row["train_seconds_a_step"] > 0
    assert row["sample_samples_a_second"] > 0 and found["cpu"] is None  # the CPU itself: no second CPU row
    assert f"| cpu | fp32 | 16 | {1000 * row['train_seconds_a_step']:.1f} |" in done.stdout
