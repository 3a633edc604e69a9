"""Loss weightings: one w(lambda) on the x0-error, the same loss whatever the network predicts;
EDM's noise levels; the recipe keys and their refusals."""

from __future__ import annotations

import math

import pytest
import torch

from denoiselab import cli
from denoiselab.builders import objective_from
from denoiselab.choices import OBJECTIVES, TIMESTEP_SAMPLING
from denoiselab.config import _OWNED_KEYS, ConfigError, TrainConfig, config_from_run_file, dump_config, load_config
from denoiselab.objectives import EDM_P_MEAN, EDM_P_STD, diffusion_loss, sample_times
from denoiselab.prediction import PREDICTIONS, target
from denoiselab.schedules import make_schedule
from denoiselab.weighting import WEIGHTINGS, Weighting, x0_error_factor

pytestmark = pytest.mark.usefixtures("one_thread")

CHAIN = make_schedule("linear", 1000)
COSINE = make_schedule("cosine", 200)
FLOW = make_schedule("flow", 1000)
# likelihood reads the schedule's speed too, not only (alpha, sigma): tests/test_likelihood_weighting.py
WEIGHTED = [Weighting(name) for name in WEIGHTINGS if name not in ("none", "likelihood")] + [
    Weighting("p2", p2_gamma=0.5, p2_k=2.0), Weighting("min-snr", min_snr_gamma=1.0), Weighting("edm", sigma_data=0.5),
    Weighting("sigmoid", sigmoid_bias=-2.0),
]  # fmt: skip


def _noised(schedule, n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = sample_times(schedule, n, g)
    x0, eps, x0_hat = (torch.randn(n, 3, generator=g, dtype=torch.float64) for _ in range(3))
    alpha, sigma = schedule.alpha_at(t), schedule.sigma_at(t)
    x_t = alpha[:, None] * x0 + sigma[:, None] * eps
    return x0, eps, x0_hat, x_t, alpha, sigma


@pytest.mark.parametrize("schedule", [CHAIN, COSINE, FLOW], ids=["linear", "cosine", "flow"])
@pytest.mark.parametrize("weighting", WEIGHTED, ids=lambda w: w.describe)
def test_every_target_gives_the_same_weighted_loss_for_the_same_x0_error(schedule, weighting):
    """A network whose clean estimate is x0_hat predicts, in each target's units, target(x0_hat,
    eps_hat) with eps_hat read from the same x_t (prediction.target: an independent route).  The
    weighted loss of each target must equal w(lambda) ||x0_hat - x0||^2."""
    x0, eps, x0_hat, x_t, alpha, sigma = _noised(schedule)
    a, s = alpha[:, None], sigma[:, None]
    eps_hat = (x_t - a * x0_hat) / s
    on_x0 = weighting.on_x0(alpha, sigma) * ((x0_hat - x0) ** 2).sum(1)
    for kind in PREDICTIONS:
        if kind == "eps" and not schedule.is_chain:
            continue  # refused by the recipe check (no eps at alpha = 0); t < 1 here, but keep to what runs
        err = ((target(kind, x0_hat, eps_hat, a, s) - target(kind, x0, eps, a, s)) ** 2).sum(1)
        torch.testing.assert_close(weighting.on_target(kind, alpha, sigma) * err, on_x0, rtol=1e-9, atol=1e-12, msg=kind)
        # and the factor itself is the one of the module's table
        torch.testing.assert_close(x0_error_factor(kind, alpha, sigma) * ((x0_hat - x0) ** 2).sum(1), err, rtol=1e-9, atol=1e-12)


def test_min_snr_in_each_targets_own_units():
    """Hang et al. 2023, Eq. 9 and its v form: min(SNR, gamma) / (SNR + 1) (diffusers #5654)."""
    t = torch.arange(1, 1001, dtype=torch.float64) / 1000
    alpha, sigma = CHAIN.alpha_at(t), CHAIN.sigma_at(t)
    snr = (alpha / sigma) ** 2
    w = Weighting("min-snr", min_snr_gamma=5.0)
    torch.testing.assert_close(w.on_target("x0", alpha, sigma), snr.clamp(max=5.0))
    torch.testing.assert_close(w.on_target("eps", alpha, sigma), snr.clamp(max=5.0) / snr)
    torch.testing.assert_close(w.on_target("v", alpha, sigma), snr.clamp(max=5.0) / (snr + 1.0))
    assert (snr > 5).any() and (snr < 5).any()  # both branches of the min are exercised
    # p2 on eps is the paper's 1 / (k + SNR)^gamma; none is 1 on every target
    torch.testing.assert_close(Weighting("p2", p2_gamma=1.0, p2_k=1.0).on_target("eps", alpha, sigma), 1.0 / (1.0 + snr))
    for kind in PREDICTIONS:
        assert torch.equal(Weighting("none").on_target(kind, alpha, sigma), torch.ones_like(alpha))


def test_weights_are_finite_at_snr_zero_and_near_the_clean_end():
    """The flow path has SNR = 0 at t = 1 (alpha = 0); a chain's k = 1 has SNR ~ 1e4."""
    t = torch.tensor([1.0, 1.0 - 1e-9, 0.5, 1e-9], dtype=torch.float64)
    alpha, sigma = FLOW.alpha_at(t), FLOW.sigma_at(t)
    for w in WEIGHTED:
        for kind in ("x0", "v", "velocity"):
            assert torch.isfinite(w.on_target(kind, alpha, sigma)).all(), (w, kind)
    k1 = torch.tensor([1 / 1000, 1.0], dtype=torch.float64)
    for w in WEIGHTED:
        for kind in PREDICTIONS:
            assert torch.isfinite(w.on_target(kind, CHAIN.alpha_at(k1), CHAIN.sigma_at(k1))).all(), (w, kind)
    # eps's closed forms at SNR = 0 are the limits of w / SNR
    zero, one = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    assert float(Weighting("min-snr").on_target("eps", zero, one)) == 1.0
    assert float(Weighting("p2", p2_gamma=1.0, p2_k=2.0).on_target("eps", zero, one)) == 0.5
    assert float(Weighting("sigmoid").on_target("eps", zero, one)) == 1.0


@pytest.mark.parametrize("schedule,prediction", [(CHAIN, "eps"), (CHAIN, "v"), (FLOW, "velocity")])
def test_diffusion_loss_weights_each_term(schedule, prediction):
    """A zero network predicting x0 errs by exactly x0 in x0 units, whatever its target, so the
    weighted loss is mean_i w(t_i) / c(t_i) |target_i|^2 / D with the times the generator draws."""
    g = torch.Generator().manual_seed(5)
    x0 = torch.randn(512, 2, generator=g)
    zero = lambda x, t, y=None: torch.zeros_like(x)  # noqa: E731
    w = Weighting("min-snr")
    loss = diffusion_loss(zero, x0, schedule, torch.Generator().manual_seed(1), prediction=prediction, weighting=w)
    g = torch.Generator().manual_seed(1)
    t = sample_times(schedule, 512, g)
    eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    alpha, sigma = schedule.alpha_at(t), schedule.sigma_at(t)
    tgt = target(prediction, x0.double(), eps.double(), alpha[:, None], sigma[:, None])
    expected = (w.on_target(prediction, alpha, sigma) * (tgt**2).mean(1)).mean()
    assert loss.item() == pytest.approx(float(expected), rel=1e-5)
    # the "none" weighting is the plain mean, bit for bit
    plain = diffusion_loss(zero, x0, schedule, torch.Generator().manual_seed(1), prediction=prediction)
    none = diffusion_loss(zero, x0, schedule, torch.Generator().manual_seed(1), prediction=prediction, weighting=Weighting())
    assert torch.equal(plain, none)


def test_edm_noise_levels_are_log_normal():
    """ln(sigma / alpha) ~ N(P_mean, P_std^2) on the flow path (where every level exists)."""
    n = 40000
    t = sample_times(FLOW, n, torch.Generator().manual_seed(0), "edm")
    assert float(t.min()) > 0 and float(t.max()) < 1
    log_s = torch.log(FLOW.sigma_at(t) / FLOW.alpha_at(t))
    se = EDM_P_STD / math.sqrt(n)
    assert abs(float(log_s.mean()) - EDM_P_MEAN) < 5 * se
    assert abs(float(log_s.std()) - EDM_P_STD) < 0.02
    k = sample_times(CHAIN, n, torch.Generator().manual_seed(0), "edm") * 1000
    assert float(k.min()) >= 1 and float(k.max()) <= 1000 and torch.equal(k, k.round())


def test_recipe_keys_build_the_objective():
    cfg = load_config("spiral", ["train.weighting=p2", "train.p2_gamma=0.5", "train.p2_k=2"])
    obj = objective_from(cfg)
    assert obj.weighting == Weighting("p2", p2_gamma=0.5, p2_k=2.0)
    assert "p2 weighting (gamma 0.5, k 2)" in obj.describe
    flow = objective_from(load_config("spiral-flow", ["train.weighting=edm", "train.timesteps=edm"]))
    assert flow.weighting.name == "edm" and flow.timesteps == "edm"


@pytest.mark.parametrize(
    "override,names",
    [
        ("train.weighting=foo", ["train.weighting", "min-snr"]),
        ("train.min_snr_gamma=0", ["train.min_snr_gamma", "> 0"]),
        ("train.p2_gamma=-1", ["train.p2_gamma", "> 0"]),
        ("train.p2_k=2", ["train.p2_k", "train.weighting = p2"]),  # set, but its weighting is not chosen
        ("train.importance_bins=5", ["train.importance_bins", "train.timesteps = importance"]),
        ("train.timesteps=bogus", ["train.timesteps", "importance"]),
    ],
)
def test_bad_values_get_one_line_and_exit_2(override, names, tmp_path, capsys):
    rc = cli.main(["train", "--set", override, "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for name in names:
        assert name in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("key", sorted(_OWNED_KEYS))
def test_a_key_the_chosen_weighting_does_not_read_is_refused_at_any_value(key):
    """Set explicitly, even at its default, a key is refused unless its owner is chosen."""
    owner, value = _OWNED_KEYS[key]
    default = getattr(TrainConfig(), key)
    choices = {"weighting": WEIGHTINGS, "timesteps": TIMESTEP_SAMPLING, "objective": OBJECTIVES}[owner]
    others = [v for v in choices if v not in (value, "logit-normal")]  # logit-normal: flow only
    recipe = "spiral-flow" if owner == "objective" else "spiral"  # the two-time objectives train on the flow path
    for chosen in others:
        with pytest.raises(ConfigError, match=rf"train\.{key}: is read only with train\.{owner} = {value} "):
            load_config(recipe, [f"train.{owner}={chosen}", f"train.{key}={default}"])
    assert getattr(load_config(recipe, [f"train.{owner}={value}", f"train.{key}={default}"]).train, key) == default


def test_the_issue_example_p2_with_min_snr_gamma_5_is_refused_on_the_command_line(tmp_path, capsys):
    rc = cli.main(["train", "--set", "train.weighting=p2", "--set", "train.min_snr_gamma=5", "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "train.min_snr_gamma" in err and "min-snr" in err
    assert not (tmp_path / "run").exists()


def test_a_resolved_recipe_leaves_out_unread_keys_and_reads_back_as_a_recipe(tmp_path):
    cfg = load_config("spiral", ["train.weighting=p2", "train.p2_k=2"])
    text = dump_config(cfg)
    assert "p2_k = 2.0" in text and "min_snr_gamma" not in text.split("# left out")[0] and "importance_bins" not in text.split("# left out")[0]
    path = tmp_path / "config.toml"
    path.write_text(text)
    assert load_config(str(path)) == cfg  # as --config: every key in it is read
    assert config_from_run_file(path) == cfg


def test_an_older_run_file_with_every_key_still_loads_but_an_override_of_an_unread_key_is_refused(tmp_path):
    """Run folders written before unread keys were left out list every key at its default."""
    import tomli_w

    cfg = load_config("spiral")
    path = tmp_path / "config.toml"
    path.write_text(tomli_w.dumps({"name": "spiral", **cfg.to_dict()}))
    assert config_from_run_file(path) == cfg
    assert load_config(str(path), ["train.steps=5"], resolved=True).train.steps == 5  # train --resume
    with pytest.raises(ConfigError, match="train.p2_gamma: is read only with train.weighting = p2"):
        load_config(str(path), ["train.p2_gamma=1"], resolved=True)
    with pytest.raises(ConfigError, match="train.p2_gamma"):
        load_config(str(path))  # as a recipe, a key it sets that nothing reads is refused


def test_importance_bins_beyond_a_chain_are_refused():
    with pytest.raises(ConfigError, match=r"train.importance_bins: must be <= schedule.T \(50\)"):
        load_config("spiral", ["schedule.T=50", "sample.steps=10", "train.timesteps=importance", "train.importance_bins=60"])
    load_config("spiral-flow", ["schedule.T=50", "sample.steps=10", "train.timesteps=importance", "train.importance_bins=60"])


def test_x0_error_by_noise_level_is_the_posterior_variance_of_the_exact_denoiser():
    """Data N(0, s^2 I): the exact eps-denoiser is E[eps | x_t] = sigma x_t / (alpha^2 s^2 + sigma^2)
    and its x0-error is the posterior variance s^2 sigma^2 / (alpha^2 s^2 + sigma^2) per coordinate
    (the figure's curve for a perfect model), whatever the target it is read through."""
    from denoiselab.objectives import x0_error_by_noise_level
    from denoiselab.prediction import target as target_of

    s2 = 0.5
    x0 = math.sqrt(s2) * torch.randn(20000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lam = torch.tensor([3.0, 1.0, 0.0, -1.0, -3.0], dtype=torch.float64)
    for schedule, kind in [(CHAIN, "eps"), (CHAIN, "v"), (FLOW, "velocity")]:

        def exact(x_t, t, y=None, schedule=schedule, kind=kind):
            a, s = schedule.alpha_at(t)[:, None], schedule.sigma_at(t)[:, None]
            eps_hat = s * x_t / (a**2 * s2 + s**2)
            return target_of(kind, (x_t - s * eps_hat) / a, eps_hat, a, s)

        mse = x0_error_by_noise_level(exact, x0, schedule, kind, lam, torch.Generator().manual_seed(1))
        t = schedule.time_at_half_log_snr(lam)
        a2, sig2 = schedule.alpha_at(t) ** 2, schedule.sigma_at(t) ** 2
        torch.testing.assert_close(mse, s2 * sig2 / (a2 * s2 + sig2), rtol=0.03, atol=0)  # 20000 x 2 draws: ~1% std
