"""The few-step solvers (DPM-Solver++(3M) and (2S), UniPC, iPNDM, EDM Heun) on the exact
denoiser of a known Gaussian mixture: convergence at their order, equivalences with the solvers
they generalise, model calls counted, the flow path.  (One step of each against diffusers:
test_diffusers_parity.py.)"""

from __future__ import annotations

import math

import pytest
import torch

from denoiselab.oracles import two_d_mixture
from denoiselab.samplers import (
    SAMPLERS,
    CountingModel,
    Denoiser,
    evaluations,
    sample_ddim,
    sample_dpmpp_2m,
    sample_dpmpp_3m,
    sample_ipndm,
    sample_unipc,
    time_grid,
)
from denoiselab.schedules import flow_schedule, make_schedule

MIX = two_d_mixture()
SCHED = make_schedule("linear", 1000)
EPS_MODEL = MIX.eps_model(SCHED)
EXACT = Denoiser(EPS_MODEL, SCHED)
FLOW = flow_schedule(1000)
VELOCITY_MODEL = MIX.denoiser(FLOW, "velocity")
EXACT_FLOW = Denoiser(VELOCITY_MODEL, FLOW, "velocity")
NEW = ("dpm++3m", "dpm++2s", "unipc", "ipndm", "edm-heun")


@pytest.fixture(autouse=True)
def single_thread(one_thread):  # conftest's session fixture: small tensors, a shared 2-core machine
    yield


def x_T(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def before_last_jump(name: str, steps: int, xT: torch.Tensor, **kwargs) -> torch.Tensor:
    """The solution at t = 0.05 on a grid uniform in t (then the final jump to 0, which every
    solver takes as the same first-order denoising step and which is left out here)."""
    grid = torch.cat([torch.linspace(1.0, 0.05, steps + 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])
    last = {}
    SAMPLERS[name](EXACT, xT, grid, on_step=lambda r: last.update(x=r.x_t), **kwargs)
    return last["x"]


CONVERGENCE = [
    # (sampler, options, order of the global error)
    ("dpm++3m", {}, 3),
    ("dpm++2s", {}, 2),
    ("unipc", {"order": 2, "variant": "bh2"}, 2),
    ("unipc", {"order": 3, "variant": "bh1"}, 3),
    ("unipc", {"order": 3, "variant": "bh2"}, 3),
    ("unipc", {"order": 1}, 2),  # UniC-1 lifts the first-order predictor to second order
    ("ipndm", {"order": 3}, 3),
    ("ipndm", {"order": 4}, 3),  # at these step sizes the fourth-order steps are not yet in their asymptote
    ("edm-heun", {}, 2),
]


@pytest.fixture(scope="module")
def ode_reference():
    xT = x_T(400, 0)
    return xT, before_last_jump("dpm++3m", 800, xT)


@pytest.mark.parametrize("name,kwargs,order", CONVERGENCE)
def test_error_falls_at_the_expected_order(ode_reference, name, kwargs, order):
    """Doubling the steps from 32 to 64 divides the error by about 2^order (allowing 0.6 below)."""
    xT, ref = ode_reference
    errors = [(before_last_jump(name, n, xT, **kwargs) - ref).norm(dim=1).mean().item() for n in (16, 32, 64)]
    assert errors[0] > errors[1] > errors[2]
    assert math.log2(errors[1] / errors[2]) > order - 0.6, errors
    # ... and the first-order solver it improves on stays far behind.
    assert errors[2] < 0.2 * (before_last_jump("ddim", 64, xT) - ref).norm(dim=1).mean().item()


@pytest.mark.parametrize("spacing", ["trailing", "logsnr", "karras"])
@pytest.mark.parametrize("steps", [1, 2, 5, 12])
def test_first_orders_are_ddim(steps, spacing):
    """UniP-1 (bh1 or bh2, without the corrector), iPNDM order 1 and DPM-Solver++ order 1 are DDIM."""
    xT, times = x_T(300, 1), time_grid(SCHED, steps, spacing)
    ddim = sample_ddim(EXACT, xT, times)
    for out in (
        sample_unipc(EXACT, xT, times, order=1, variant="bh1", corrector=False),
        sample_unipc(EXACT, xT, times, order=1, variant="bh2", corrector=False),
        sample_ipndm(EXACT, xT, times, order=1),
        sample_dpmpp_3m(EXACT, xT, times, order=1),
    ):
        torch.testing.assert_close(out, ddim, rtol=0, atol=1e-10)
    if steps >= 5:  # with its corrector, UniPC-1 is another method
        pc = sample_unipc(EXACT, xT, times, order=1, variant="bh1")
        assert (pc - ddim).abs().max().item() > 1e-3


@pytest.mark.parametrize("denoise", [EXACT, EXACT_FLOW], ids=["eps", "velocity"])
@pytest.mark.parametrize("steps,spacing", [(3, "trailing"), (8, "logsnr"), (20, "karras"), (16, "time-uniform")])
def test_3m_capped_at_order_2_is_2m_exactly(denoise, steps, spacing):
    xT = x_T(200, 2)
    grid = time_grid(denoise.schedule, steps, spacing)
    two = sample_dpmpp_2m(denoise, xT, grid)
    assert torch.equal(sample_dpmpp_3m(denoise, xT, grid, order=2), two)
    if steps >= 8:
        three = sample_dpmpp_3m(denoise, xT, grid)
        assert (three - two).abs().max().item() > 1e-5


@pytest.mark.parametrize("schedule,model,prediction", [(SCHED, EPS_MODEL, "eps"), (FLOW, VELOCITY_MODEL, "velocity")])
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_model_calls_are_the_evaluations_counted(schedule, model, prediction, name):
    for steps in (1, 2, 7):
        counting = CountingModel(model)
        denoise = Denoiser(counting, schedule, prediction)
        SAMPLERS[name](denoise, x_T(20, 3), time_grid(schedule, steps), generator=torch.Generator().manual_seed(0))
        assert counting.calls == evaluations(name, steps), (name, steps)


@pytest.mark.parametrize("name", NEW)
def test_flow_path_from_t_1(name):
    """On the flow path lambda = -inf at t = 1: every solver starts there without infinities and
    approaches the ODE solution as steps grow."""
    xT = x_T(300, 4)
    ref = sample_dpmpp_3m(EXACT_FLOW, xT, time_grid(FLOW, 400, "time-uniform"))
    errors = []
    for steps in (6, 24):
        out = SAMPLERS[name](EXACT_FLOW, xT, time_grid(FLOW, steps, "logsnr"))
        assert torch.isfinite(out).all()
        errors.append((out - ref).norm(dim=1).mean().item())
    assert errors[1] < 0.3 * errors[0] and errors[1] < 0.1, errors


@pytest.mark.parametrize("name", NEW)
def test_records_form_one_trajectory_ending_clean(name):
    records = []
    xT = x_T(50, 5)
    out = SAMPLERS[name](EXACT, xT, time_grid(SCHED, 6, "logsnr"), on_step=records.append)
    grid = time_grid(SCHED, 6, "logsnr").tolist()
    assert [r.t for r in records] == grid[:-1] and [r.t_next for r in records] == grid[1:]
    assert records[0].x_t is xT and out is records[-1].x_next
    for r in records:  # x0 and eps are the two readings of the prediction at the point evaluated
        a, s = float(SCHED.alpha_at(r.t)), float(SCHED.sigma_at(r.t))
        torch.testing.assert_close(a * r.x0 + s * r.eps, r.x_t, rtol=1e-9, atol=1e-9)


def test_bad_options_raise():
    xT, times = x_T(4, 6), time_grid(SCHED, 5)
    for call in (
        lambda: sample_dpmpp_3m(EXACT, xT, times, order=4),
        lambda: sample_unipc(EXACT, xT, times, order=4),
        lambda: sample_unipc(EXACT, xT, times, variant="bh3"),
        lambda: sample_ipndm(EXACT, xT, times, order=5),
    ):
        with pytest.raises(ValueError):
            call()
