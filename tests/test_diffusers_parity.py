"""diffusers as a numerical oracle: same schedule, same model output, same step.

Conventions bridged here:
  * our grid index k is diffusers' 0-based timestep j plus one (k = j + 1), and k = 0 (clean
    data, alpha = 1) is diffusers' "previous timestep -1" with alpha_prod = 1;
  * our model_fn receives t = k / T, diffusers' loop passes the integer j; the fake model below is
    written in terms of j = round(t T) - 1, so both sides see the same model output.

diffusers stores its schedule in float32.  Where a scheduler keeps the sample's dtype (DDPM,
DDIM) we first check its float32 alphas_cumprod against ours and then hand it our float64 values,
so trajectories can be compared to ~1e-10; DPMSolverMultistepScheduler computes every update in
float32, so it is compared at float32 tolerance.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip("diffusers")
from diffusers import (  # noqa: E402
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    DPMSolverSinglestepScheduler,
    HeunDiscreteScheduler,
    IPNDMScheduler,
    UniPCMultistepScheduler,
)

from denoiselab.forward_process import q_posterior, transition  # noqa: E402
from denoiselab.samplers import Denoiser, sample_ddim, sample_ddpm, sample_dpmpp_2m, step_grid, time_grid  # noqa: E402
from denoiselab.schedules import Schedule, make_schedule  # noqa: E402

# (diffusers beta_schedule, our kind, beta_start, beta_end)
BETA_SCHEDULES = {
    "linear": ("linear", "linear", 1e-4, 0.02),
    "scaled_linear": ("scaled_linear", "quadratic", 0.00085, 0.012),
    "cosine": ("squaredcos_cap_v2", "cosine", 1e-4, 0.02),
    "sigmoid": ("sigmoid", "sigmoid", 1e-4, 0.02),  # DDPMScheduler only
}
SHAPE = (3, 2, 4, 4)  # image-like, so every broadcast is exercised
# diffusers 0.42 with numpy 2 warns about __array__(copy=...) in DPMSolverMultistepScheduler.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def ours(name: str, T: int):
    _, kind, lo, hi = BETA_SCHEDULES[name]
    return make_schedule(kind, T, beta_start=lo, beta_end=hi, scale_with_T=False)


def theirs(cls, name: str, T: int, float64: bool, **config):
    beta_schedule, _, lo, hi = BETA_SCHEDULES[name]
    sched = cls(num_train_timesteps=T, beta_schedule=beta_schedule, beta_start=lo, beta_end=hi, **config)
    if float64:
        ab = ours(name, T).alpha_bars[1:].clone()
        # Only swap in values diffusers already agrees with (to float32 precision).
        torch.testing.assert_close(sched.alphas_cumprod.double(), ab, rtol=2e-5, atol=0)
        sched.alphas_cumprod = ab
    return sched


class Fake:
    """A deterministic, nonlinear stand-in for a network, written in diffusers' timestep j.

    eps(x, j) = sigma x / (alpha^2 s^2 + sigma^2) + alpha * 0.3 sin(1.7 x + j / 37) at k = j + 1:
    the exact noise prediction for data N(0, s^2) plus a perturbation that moves x0 by O(1),
    so outputs stay O(1) and a timestep off by one changes the output by ~1e-2.
    """

    def __init__(self, name: str, T: int, s: float = 0.5):
        self.T, self.s = T, s
        sch = ours(name, T)
        self.alphas, self.sigmas = sch.alphas, sch.sigmas

    def eps(self, x: torch.Tensor, j) -> torch.Tensor:
        """diffusers' side: integer timestep j (a scalar)."""
        j = torch.as_tensor(j).long()
        shape = (-1,) + (1,) * (x.ndim - 1) if j.ndim else ()
        a, sg = (v[j + 1].to(x.dtype).reshape(shape) for v in (self.alphas, self.sigmas))
        jf = j.to(x.dtype).reshape(shape)
        return sg * x / (a**2 * self.s**2 + sg**2) + a * 0.3 * torch.sin(1.7 * x + jf / 37.0)

    def model_fn(self, x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        """Our side: t = k / T of shape (B,), and k = j + 1."""
        k = torch.round(t.double() * self.T).long()
        assert (k >= 1).all()  # the model is never called at k = 0
        return self.eps(x, k - 1)


def start(seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# Schedules and grids
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("T", [1000, 300, 50])
@pytest.mark.parametrize("name", list(BETA_SCHEDULES))
def test_schedules_match_diffusers(name, T):
    sched = DDPMScheduler(
        num_train_timesteps=T, beta_schedule=BETA_SCHEDULES[name][0], beta_start=BETA_SCHEDULES[name][2], beta_end=BETA_SCHEDULES[name][3]
    )
    sch = ours(name, T)
    torch.testing.assert_close(sched.betas.double(), sch.betas, rtol=1e-6, atol=1e-9)
    # float32 cumprod; the cosine schedule's last factor 1 - 0.999 loses ~1e-5 in float32.
    torch.testing.assert_close(sched.alphas_cumprod.double(), sch.alpha_bars[1:], rtol=2e-5, atol=0)
    if name == "cosine":
        assert sched.betas[-1].item() == pytest.approx(0.999)  # the same clip


@pytest.mark.parametrize("T", [1000, 300, 50])
def test_leading_grid_matches_ddim_and_ddpm(T):
    sch = ours("linear", T)
    ddim, ddpm = DDIMScheduler(num_train_timesteps=T), DDPMScheduler(num_train_timesteps=T)
    for steps in range(1, T + 1):
        g = step_grid(sch, steps, "leading")
        for sched in (ddim, ddpm):
            sched.set_timesteps(steps)
            assert (sched.timesteps + 1).tolist() == g[:-1].tolist(), steps
        # DDIM steps to t - T // steps: the next grid point (or -1, alpha = 1, at the end).
        assert (g[:-1] - T // steps).clamp(min=0).tolist() == g[1:].tolist()


@pytest.mark.parametrize("T", [1000, 300, 50])
def test_linspace_grid_matches_dpm_solver(T):
    sch = ours("linear", T)
    dpm = DPMSolverMultistepScheduler(num_train_timesteps=T, timestep_spacing="linspace")
    for steps in range(1, T):
        dpm.set_timesteps(steps)
        assert (dpm.timesteps + 1).tolist() == step_grid(sch, steps, "linspace")[:-1].tolist(), steps
    # steps == T: diffusers repeats a timestep; we return the full grid instead.
    dpm.set_timesteps(T)
    assert len(set(dpm.timesteps.tolist())) < T
    assert step_grid(sch, T, "linspace").tolist() == list(range(T, -1, -1))


@pytest.mark.parametrize("T", [1000, 300, 50])
def test_trailing_grid_matches_diffusers_up_to_its_float_noise(T):
    """diffusers' trailing grid is round(arange(T, 0, -T/steps)) - 1 in floating point.

    It agrees with ours (round(linspace(T, 0, steps + 1)), the integers nearest to the exact
    T (steps - i) / steps) except where an exact value is a .5 tie, which float rounding on
    either side breaks either way, and where arange's float length overshoots: then diffusers
    returns steps + 1 timesteps, the last of them -1 (a diffusers bug).
    """
    sch = ours("linear", T)
    ddim = DDIMScheduler(num_train_timesteps=T, timestep_spacing="trailing")
    dpm = DPMSolverMultistepScheduler(num_train_timesteps=T, timestep_spacing="trailing")
    n_quirks = 0
    for steps in range(1, T + 1):
        g = step_grid(sch, steps, "trailing").tolist()
        exact = [Fraction(T * (steps - i), steps) for i in range(steps + 1)]
        # Nearest integers to the exact points (either neighbour at a .5 tie).
        assert all(abs(k - v) <= Fraction(1, 2) for k, v in zip(g, exact, strict=True))
        overshoot = len(np.arange(T, 0, -T / steps)) != steps
        tie = any(v.denominator == 2 for v in exact)
        n_quirks += overshoot or tie
        for sched in (ddim, dpm):
            sched.set_timesteps(steps)
            got = (sched.timesteps + 1).tolist()
            if overshoot:
                assert len(got) == steps + 1 and got[-1] == 0, steps  # timestep -1
                got = got[:-1]
            if not tie:
                assert got == g[:-1], steps
    assert n_quirks < T // 2  # most step counts are compared


# ---------------------------------------------------------------------------------------------
# DDPM
# ---------------------------------------------------------------------------------------------

DDPM_CASES = [
    # (T, steps, our spacing, diffusers spacing)
    (1000, 1000, "trailing", "leading"),
    (1000, 50, "leading", "leading"),
    (1000, 7, "trailing", "trailing"),
    (300, 300, "leading", "leading"),
    (300, 50, "leading", "leading"),
]


@pytest.mark.parametrize("variance,variance_type", [("small", "fixed_small"), ("large", "fixed_large")])
@pytest.mark.parametrize("T,steps,spacing,their_spacing", DDPM_CASES)
def test_ddpm_each_step_matches(T, steps, spacing, their_spacing, variance, variance_type):
    """Per step: diffusers' posterior mean (its output minus its noise) and variance vs ours."""
    sch, fake = ours("linear", T), Fake("linear", T)
    sched = theirs(DDPMScheduler, "linear", T, True, variance_type=variance_type, clip_sample=False, timestep_spacing=their_spacing)
    sched.set_timesteps(steps)
    records = []
    sample_ddpm(Denoiser(fake.model_fn, sch), start(), time_grid(sch, steps, spacing), variance=variance, generator=gen(0), on_step=records.append)
    assert [r.k - 1 for r in records] == sched.timesteps.tolist()
    for r, j in zip(records, sched.timesteps, strict=True):
        out = sched.step(fake.eps(r.x_t, j), j, r.x_t, generator=gen(100 + r.index))
        z = torch.randn(SHAPE, generator=gen(100 + r.index), dtype=torch.float64)
        var_theirs = sched._get_variance(j).item() if j > 0 else 0.0  # diffusers adds noise iff j > 0
        mean_theirs = out.prev_sample - var_theirs**0.5 * z
        post = q_posterior(sch, r.x0, r.x_t, r.k, r.k_next)
        torch.testing.assert_close(out.pred_original_sample, r.x0, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(mean_theirs, post.mean, rtol=1e-9, atol=1e-10)
        if r.k_next > 0:
            var_ours = post.variance.item() if variance == "small" else transition(sch, r.k_next, r.k)[1].item()
            assert var_ours == pytest.approx(var_theirs, rel=1e-9)
        else:
            # The last step returns the clean estimate, the noise-free posterior mean.
            torch.testing.assert_close(r.x_next, mean_theirs, rtol=1e-9, atol=1e-10)
            torch.testing.assert_close(r.x_next, r.x0, rtol=0, atol=1e-12)
            if j > 0 and variance_type == "fixed_large":
                # Known difference: on a grid whose last timestep is not 0 (trailing), diffusers'
                # fixed_large still adds noise of variance beta = 1 - alpha_bar_j on the last step.
                assert var_theirs == pytest.approx(1 - sch.alpha_bars[r.k].item(), rel=1e-9)


@pytest.mark.parametrize("variance,variance_type", [("small", "fixed_small"), ("large", "fixed_large")])
@pytest.mark.parametrize("T,steps,spacing,their_spacing", [(1000, 1000, "trailing", "leading"), (300, 50, "leading", "leading"), (1000, 7, "trailing", "trailing")])
def test_ddpm_full_run_with_shared_noise(T, steps, spacing, their_spacing, variance, variance_type):
    """Both draw one randn(shape) per step, in the same order, so equal seeds give equal noise."""
    sch, fake = ours("linear", T), Fake("linear", T)
    sched = theirs(DDPMScheduler, "linear", T, True, variance_type=variance_type, clip_sample=False, timestep_spacing=their_spacing)
    sched.set_timesteps(steps)
    records = []
    mine = sample_ddpm(Denoiser(fake.model_fn, sch), start(1), time_grid(sch, steps, spacing), variance=variance, generator=gen(42), on_step=records.append)
    x, g = start(1), gen(42)
    for r, j in zip(records, sched.timesteps, strict=True):
        torch.testing.assert_close(x, r.x_t, rtol=1e-8, atol=1e-8)
        state = g.get_state()
        x = sched.step(fake.eps(x, j), j, x, generator=g).prev_sample
    # Last step: diffusers may add noise there (see above); take it out before comparing.
    if sched.timesteps[-1] > 0:
        z = torch.randn(SHAPE, generator=torch.Generator().set_state(state), dtype=torch.float64)
        x = x - sched._get_variance(sched.timesteps[-1]).item() ** 0.5 * z
    torch.testing.assert_close(mine, x, rtol=1e-8, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# DDIM
# ---------------------------------------------------------------------------------------------

DDIM_CASES = [
    # (schedule, T, steps, spacing); trailing only where steps divides T (see below)
    ("linear", 1000, 50, "leading"),
    ("linear", 1000, 7, "leading"),
    ("linear", 1000, 50, "trailing"),
    ("linear", 1000, 1000, "trailing"),
    ("linear", 300, 30, "trailing"),
    ("linear", 300, 7, "leading"),
    ("scaled_linear", 1000, 25, "trailing"),
    ("cosine", 1000, 20, "trailing"),
    ("cosine", 300, 13, "leading"),
]


def ddim_loop(sched, fake, x, eta, generator=None):
    for j in sched.timesteps:
        x = sched.step(fake.eps(x, j), j, x, eta=eta, generator=generator).prev_sample
    return x


@pytest.mark.parametrize("name,T,steps,spacing", DDIM_CASES)
def test_ddim_eta0_full_run(name, T, steps, spacing):
    sch = ours(name, T)
    sched = theirs(DDIMScheduler, name, T, True, set_alpha_to_one=True, clip_sample=False, timestep_spacing=spacing)
    sched.set_timesteps(steps)
    fake = Fake(name, T)
    theirs_x = ddim_loop(sched, fake, start(2), 0.0)
    mine = sample_ddim(Denoiser(fake.model_fn, sch), start(2), time_grid(sch, steps, spacing), eta=0.0)
    torch.testing.assert_close(mine, theirs_x, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name,T,steps,spacing", [("linear", 1000, 50, "trailing"), ("cosine", 300, 13, "leading")])
def test_ddim_eta0_full_run_float32_native_schedule(name, T, steps, spacing):
    """diffusers as shipped (float32 schedule, float32 samples): agreement at float32 level."""
    sch = ours(name, T)
    sched = theirs(DDIMScheduler, name, T, False, set_alpha_to_one=True, clip_sample=False, timestep_spacing=spacing)
    sched.set_timesteps(steps)
    fake = Fake(name, T)
    theirs_x = ddim_loop(sched, fake, start(3, torch.float32), 0.0)
    mine = sample_ddim(Denoiser(fake.model_fn, sch), start(3, torch.float32), time_grid(sch, steps, spacing), eta=0.0)
    assert mine.dtype == torch.float32
    torch.testing.assert_close(mine, theirs_x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("eta", [0.5, 1.0])
@pytest.mark.parametrize("name,T,steps,spacing", [("linear", 1000, 50, "leading"), ("linear", 1000, 20, "trailing"), ("cosine", 300, 7, "leading")])
def test_ddim_eta_positive(name, T, steps, spacing, eta):
    sch = ours(name, T)
    sched = theirs(DDIMScheduler, name, T, True, set_alpha_to_one=True, clip_sample=False, timestep_spacing=spacing)
    sched.set_timesteps(steps)
    # The variance of every step: eta^2 times the posterior variance between the two visited points.
    grid = step_grid(sch, steps, spacing)
    for i, j in enumerate(sched.timesteps.tolist()):
        prev_j = j - T // steps
        k, s = int(grid[i]), int(grid[i + 1])
        assert (k - 1, s - 1) == (j, max(prev_j, -1))
        post_var = q_posterior(sch, torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64), k, s).variance.item()
        assert post_var == pytest.approx(sched._get_variance(j, prev_j).item(), rel=1e-9, abs=1e-15)
    # A full run: both draw one randn(shape) per step in the same order (diffusers also draws one
    # for the last step, whose variance is 0), so equal seeds give equal trajectories.
    fake = Fake(name, T)
    theirs_x = ddim_loop(sched, fake, start(4), eta, generator=gen(7))
    mine = sample_ddim(Denoiser(fake.model_fn, sch), start(4), time_grid(sch, steps, spacing), eta=eta, generator=gen(7))
    torch.testing.assert_close(mine, theirs_x, rtol=1e-8, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# DPM-Solver++(2M)
# ---------------------------------------------------------------------------------------------

DPM_CASES = [
    ("linear", 1000, 20, "linspace"),
    ("linear", 1000, 10, "trailing"),
    ("linear", 1000, 25, "trailing"),
    ("linear", 1000, 7, "linspace"),
    ("linear", 300, 30, "trailing"),
    ("linear", 300, 13, "linspace"),
    ("scaled_linear", 1000, 20, "linspace"),
    ("cosine", 1000, 20, "trailing"),
    ("cosine", 1000, 15, "linspace"),
]


def dpm_loop(sched, fake, x):
    for j in sched.timesteps:
        x = sched.step(fake.eps(x, j), j, x).prev_sample
    return x


@pytest.mark.parametrize("name,T,steps,spacing", DPM_CASES)
def test_dpmpp_2m_full_run(name, T, steps, spacing):
    sch = ours(name, T)
    sched = DPMSolverMultistepScheduler(
        num_train_timesteps=T,
        beta_schedule=BETA_SCHEDULES[name][0],
        beta_start=BETA_SCHEDULES[name][2],
        beta_end=BETA_SCHEDULES[name][3],
        algorithm_type="dpmsolver++",
        solver_order=2,
        final_sigmas_type="zero",
        lower_order_final=True,
        timestep_spacing=spacing,
    )
    sched.set_timesteps(steps)
    assert (sched.timesteps + 1).tolist() == step_grid(sch, steps, spacing)[:-1].tolist()
    fake = Fake(name, T)
    theirs_x = dpm_loop(sched, fake, start(5))
    mine = sample_dpmpp_2m(Denoiser(fake.model_fn, sch), start(5), time_grid(sch, steps, spacing))
    # diffusers computes each update in float32.  With the cosine schedule its first step reads
    # sigma_T = 0.99999994 (float32) for 0.9999999988 and divides by alpha_T = 5e-5, which moves
    # x0 by ~1e-3 and the output by ~1e-4: a float32 limit, not a difference in the method ...
    tol = 5e-4 if name == "cosine" else 1e-5
    torch.testing.assert_close(mine, theirs_x, rtol=tol, atol=tol)
    # ... as running our solver on diffusers' own float32 (alpha, sigma) table shows.
    ac = sched.alphas_cumprod
    a32, s32 = sched._sigma_to_alpha_sigma_t(torch.from_numpy(np.asarray(((1 - ac) / ac) ** 0.5, dtype=np.float32)))
    sch32 = Schedule("diffusers-float32", torch.cat([torch.ones(1), a32]).double(), torch.cat([torch.zeros(1), s32]).double())
    mine32 = sample_dpmpp_2m(Denoiser(fake.model_fn, sch32), start(5), time_grid(sch32, steps, spacing))
    torch.testing.assert_close(mine32, theirs_x, rtol=2e-6, atol=2e-6)
    # The agreement is not an accident of a weak model: first order differs by far more.
    first = sample_dpmpp_2m(Denoiser(fake.model_fn, sch), start(5), time_grid(sch, steps, spacing), order=1)
    assert (first - theirs_x).abs().max().item() > 1e-3


# ---------------------------------------------------------------------------------------------
# Few-step solvers: DPM-Solver++(3M) and (2S), UniPC, iPNDM, EDM Heun
# ---------------------------------------------------------------------------------------------


def float32_schedule(sched) -> Schedule:
    """Our schedule on diffusers' own float32 (alpha, sigma) table, for trajectories that agree to
    float32 rounding instead of being limited by the difference of the two tables."""
    ac = sched.alphas_cumprod
    a32, s32 = sched._sigma_to_alpha_sigma_t(torch.from_numpy(np.asarray(((1 - ac) / ac) ** 0.5, dtype=np.float32)))
    return Schedule("diffusers-float32", torch.cat([torch.ones(1), a32]).double(), torch.cat([torch.zeros(1), s32]).double())


def scheduler(cls, name: str, T: int, **config):
    return cls(num_train_timesteps=T, beta_schedule=BETA_SCHEDULES[name][0], beta_start=BETA_SCHEDULES[name][2], beta_end=BETA_SCHEDULES[name][3], **config)


@pytest.mark.parametrize("name,T,steps,spacing", [("linear", 1000, 10, "trailing"), ("linear", 1000, 5, "linspace"), ("linear", 1000, 20, "trailing"), ("cosine", 1000, 8, "trailing")])
def test_dpmpp_3m_full_run(name, T, steps, spacing):
    """Orders 1, 2, 3, ..., 3, then 2 (below 15 steps) and 1 (to sigma = 0), as diffusers ramps them."""
    from denoiselab.samplers import sample_dpmpp_3m

    sched = scheduler(DPMSolverMultistepScheduler, name, T, algorithm_type="dpmsolver++", solver_order=3, final_sigmas_type="zero", lower_order_final=True, timestep_spacing=spacing)
    sched.set_timesteps(steps)
    fake = Fake(name, T)
    theirs_x = dpm_loop(sched, fake, start(5))
    sch32 = float32_schedule(sched)
    denoise, times = Denoiser(fake.model_fn, sch32), time_grid(sch32, steps, spacing)
    mine32 = sample_dpmpp_3m(denoise, start(5), times)
    torch.testing.assert_close(mine32, theirs_x, rtol=2e-6, atol=2e-6)
    second = sample_dpmpp_3m(denoise, start(5), times, order=2)
    assert (second - theirs_x).abs().max().item() > 1e-4  # third order is really taken


@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("name,T,steps,spacing", [("linear", 1000, 10, "trailing"), ("linear", 1000, 6, "linspace"), ("cosine", 1000, 8, "trailing")])
def test_unipc_full_run(name, T, steps, spacing, order, variant):
    """UniPC's predictor and corrector at every step (its corrector reuses the next step's model
    output; none after the last step), orders ramped up and down as in diffusers.

    Compared step by step (the predicted points, where the model is called) and at the end; with
    bh1, diffusers' last step to sigma = 0 returns NaN (B(h) = -h = -inf times a zero history term),
    so there only the steps before it are compared."""
    from denoiselab.samplers import sample_unipc

    sched = scheduler(UniPCMultistepScheduler, name, T, solver_order=order, solver_type=variant, predict_x0=True, lower_order_final=True, final_sigmas_type="zero", timestep_spacing=spacing)
    sched.set_timesteps(steps)
    fake = Fake(name, T)
    x, theirs_steps = start(6), []
    for j in sched.timesteps:
        x = sched.step(fake.eps(x, j), j, x).prev_sample
        theirs_steps.append(x)
    records = []
    sch32 = float32_schedule(sched)
    denoise, times = Denoiser(fake.model_fn, sch32), time_grid(sch32, steps, spacing)
    mine32 = sample_unipc(denoise, start(6), times, order=order, variant=variant, on_step=records.append)
    for r, theirs_x in zip(records[:-1], theirs_steps[:-1], strict=True):
        torch.testing.assert_close(r.x_next, theirs_x, rtol=1e-5, atol=1e-5)
    if variant == "bh2":
        torch.testing.assert_close(mine32, x, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(mine32).all()
    plain = sample_unipc(denoise, start(6), times, order=order, variant=variant, corrector=False)
    assert (plain - mine32).abs().max().item() > 1e-4  # the corrector is really applied


@pytest.mark.parametrize("name,ks", [("linear", [999, 500, 0]), ("linear", [600, 201, 0]), ("cosine", [900, 300, 0])])
def test_dpmpp_2s_one_step(name, ks):
    """One 2S step t -> s is diffusers' singlestep order 1 to our intermediate point u, then its
    order 2 from t to s with the estimate at u (and the last step first order)."""
    from denoiselab.samplers import sample_dpmpp_2s

    T = 1000
    sched = scheduler(DPMSolverSinglestepScheduler, name, T, algorithm_type="dpmsolver++", solver_order=2, final_sigmas_type="zero", lower_order_final=True)
    sch32, fake = None, Fake(name, T)
    seen = []

    def model_fn(x, t, y=None):
        seen.append(round(float(t[0]) * T))
        return fake.model_fn(x, t)

    records = []
    sched.set_timesteps(2)  # only to read the float32 table
    sch32 = float32_schedule(sched)
    mine = sample_dpmpp_2s(Denoiser(model_fn, sch32), start(7), [k / T for k in ks], on_step=records.append)
    assert len(seen) == 3 and seen[0] == ks[0] and seen[2] == ks[1] and ks[1] < seen[1] < ks[0]
    sched.set_timesteps(timesteps=[k - 1 for k in seen])  # t, u, s
    assert sched.get_order_list(3) == [1, 2, 1]
    x = start(7)
    for i, j in enumerate(sched.timesteps):
        x = sched.step(fake.eps(x, j), j, x).prev_sample
        if i == 1:
            torch.testing.assert_close(records[0].x_next, x, rtol=2e-6, atol=2e-6)
    torch.testing.assert_close(mine, x, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("ks", [[999, 700, 400, 200, 100, 40, 10, 0], [800, 333, 0]])
def test_ipndm_full_run(ks):
    """diffusers' IPNDMScheduler runs the same Adams-Bashforth steps in x / alpha and sigma / alpha
    on its own table of (alpha, sigma); handed our values at our grid (trained_betas holds its
    sigmas) and eps in the form it reads (v, from which it recovers eps), the trajectories agree."""
    from denoiselab.samplers import sample_ipndm

    T, sch, fake = 1000, ours("linear", 1000), Fake("linear", 1000)
    sigmas = [float(sch.sigmas[k]) for k in ks]
    sched = IPNDMScheduler(num_train_timesteps=T, trained_betas=sigmas)
    sched.set_timesteps(len(ks) - 1)
    x = start(8).float()
    for i, j in enumerate(sched.timesteps):
        a, s = float(sch.alphas[ks[i]]), sigmas[i]
        eps = fake.eps(x, ks[i] - 1)
        x = sched.step((eps - s * x) / a, j, x).prev_sample  # v such that s x + a v = eps
    mine = sample_ipndm(Denoiser(fake.model_fn, sch), start(8).float(), [k / T for k in ks])
    torch.testing.assert_close(mine, x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,ks", [("linear", [999, 600, 300, 120, 40, 0]), ("cosine", [950, 500, 100, 0])])
def test_edm_heun_full_run(name, ks):
    """diffusers' HeunDiscreteScheduler is Karras et al.'s Heun in x / alpha and sigma / alpha,
    with an Euler last step to sigma = 0: our edm-heun on the same timesteps."""
    from denoiselab.samplers import sample_edm_heun, sample_heun

    T, fake = 1000, Fake(name, 1000)
    sched = scheduler(HeunDiscreteScheduler, name, T)
    sched.set_timesteps(timesteps=[k - 1 for k in ks[:-1]])
    x_tilde = start(9) / float(ours(name, T).alphas[ks[0]])
    for j in sched.timesteps:
        eps = fake.eps(sched.scale_model_input(x_tilde, j), int(j))
        x_tilde = sched.step(eps, j, x_tilde).prev_sample
    sch32 = float32_schedule(scheduler(DPMSolverMultistepScheduler, name, T))
    denoise, times = Denoiser(fake.model_fn, sch32), [k / T for k in ks]
    mine = sample_edm_heun(denoise, start(9), times)
    torch.testing.assert_close(mine, x_tilde, rtol=1e-4, atol=1e-4)
    other = sample_heun(denoise, start(9), times)
    assert (other - x_tilde).abs().max().item() > 1e-3  # heun (in the flow variables) is another method
