"""A peer in the same run: facebookresearch/flow_matching's ODESolver.compute_likelihood (a test-only
dependency) on the same trained flow model and the same points gives the same NLL.

flow_matching runs time the other way (s = 0 noise, s = 1 data, velocity d x / d s), so the
model's velocity u = d x / d t (t = 1 - s) is handed to it as v(x, s) = -u(x, 1 - s); it solves
from the data (s = 1) to the noise (s = 0) with torchdiffeq's dopri5 and adds log N(x_0; 0, I).
denoiselab starts at sigma / alpha = 1e-5 (t = 1e-5) instead of t = 0: a difference of order
1e-5 nats.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TINY, train_tiny
from flow_matching.solver import ODESolver

from denoiselab import likelihood
from denoiselab.runs import load_run
from denoiselab.runs.likelihood import likelihood_points

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory, one_thread):
    return train_tiny(tmp_path_factory, "spiral-flow", "peer", [*TINY, "train.steps=300", "model.fourier=0"])


class Reversed(torch.nn.Module):
    """The run's flow velocity in flow_matching's time: v(x, s) = -u(x, 1 - s)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, t):
        s = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
        return -self.model(x, 1.0 - s, None)


def standard_normal_log_prob(x: torch.Tensor) -> torch.Tensor:
    return -0.5 * (x**2).sum(1) - 0.5 * x.shape[1] * math.log(2 * math.pi)


def test_flow_matching_compute_likelihood_agrees_on_a_trained_flow_model(flow_run):
    run = load_run(flow_run)
    model = run.model.double()
    x = torch.as_tensor(run.normalization.encode(likelihood_points(run, n=64).x), dtype=torch.float64)
    ours = likelihood(lambda z, t, y=None: model(z, t, y), run.schedule, x, prediction="velocity", rtol=1e-7, atol=1e-7)
    solver = ODESolver(velocity_model=Reversed(model))
    _, peer = solver.compute_likelihood(
        x_1=x, log_p0=standard_normal_log_prob, step_size=None, method="dopri5", atol=1e-7, rtol=1e-7, exact_divergence=True
    )
    assert float((ours.log_prob - peer).abs().max()) < 1e-3
    assert float((ours.log_prob - peer).abs().mean()) < 2e-4
    # and not by accident: the two differ by nats from a standard normal read at the data
    assert float((peer - standard_normal_log_prob(x)).abs().mean()) > 0.1
