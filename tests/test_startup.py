"""The command line starts without the heavy stack: `denoiselab --help`, a bad option and a bad
recipe key are answered without importing torch, numpy, scipy, matplotlib or the web stack
(benchmarks/startup.py measures the time; here only what is imported is checked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
HEAVY = ("torch", "numpy", "scipy", "matplotlib", "fastapi", "uvicorn", "safetensors", "PIL")

PROBE = """
import json, sys
from denoiselab import cli
status = cli.main(sys.argv[1:])
print(json.dumps({"status": status, "heavy": [m for m in HEAVY if m in sys.modules]}))
"""


def _imported_by(*argv: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    code = f"HEAVY = {HEAVY!r}\n{PROBE}"
    done = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv, status",
    [
        (["--help"], 0),
        (["train", "--help"], 0),
        (["sample", "--help"], 0),
        (["train", "--bogus"], 2),
        (["train", "--set", "train.lrr=1e-3"], 2),
        (["train", "--set", "sample.sampler=ddpn"], 2),
        (["train", "--config", "no-such-recipe"], 2),
        (["train", "--resume", "/no/such/run"], 2),
        (["schedules", "--T", "0"], 2),
        (["evaluate", "/no/such/run"], 2),
        (["sample", "/no/such/run", "--out", "x.png"], 2),
        (["tune-steps", "/no/such/run", "--nfe", "5"], 2),
        (["plot", "/no/such/run"], 2),
        (["inpaint", "/no/such/run", "--image", "x.png", "--mask", "left", "--out", "y.png"], 2),
    ],
)
def test_help_and_usage_errors_import_nothing_heavy(argv, status):
    result = _imported_by(*argv)
    assert result == {"status": status, "heavy": []}


def test_the_light_names_are_the_implemented_ones():
    from denoiselab import choices
    from denoiselab.samplers import SAMPLERS

    assert choices.SAMPLER_NAMES == tuple(SAMPLERS)
