"""benchmarks/one_step.py's --data-n: every run it trains draws that many training points (the
recipe's data.n otherwise), and a count that is not positive is one line, exit 2.  Its scores
are for BENCHMARKS.md, not asserted here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def one_step(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import one_step

    return one_step


@pytest.mark.parametrize("data_n, expected", [(None, 2000), (300, 300)])
def test_the_trained_run_draws_data_n_points(one_step, tmp_path, data_n, expected):
    from denoiselab.runs import load_run

    _, steps = one_step._train("spiral-flow", "moons", tmp_path / "run", 0.001, 1, data_n)  # 2000 steps x 0.001
    run = load_run(tmp_path / "run")
    assert steps == 2 and len(run.data) == expected and run.config.data.n == expected and run.config.data.name == "moons"


@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_data_n_that_is_not_positive_is_one_line_exit_2(value):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "one_step.py"), "--data-n", value], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"one_step.py: error: --data-n: expected a positive number of training points, got {value}"
