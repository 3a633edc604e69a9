"""Line plots: one noise schedule, several schedules compared, and the training loss.

Schedules are drawn against continuous time t = k / T in [0, 1] (k = 0 clean data, k = T
noise; see denoiselab.schedules), with the step index k on a secondary axis on top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..schedules import Schedule
from . import style
from .style import DATA_COLOR, NOISE_COLOR, NOISE_FLOOR_DB, REFERENCE_COLOR, new_figure, save_figure


def _check_schedule(schedule) -> Schedule:
    if not isinstance(schedule, Schedule):
        raise ValueError(f"expected a denoiselab Schedule, got {type(schedule).__name__}")
    return schedule


def _np(x) -> np.ndarray:
    return x.detach().cpu().double().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float64)


def _step_axis(ax, T: int) -> None:
    sec = ax.secondary_xaxis("top", functions=(lambda t: t * T, lambda k: k / T))
    sec.set_xlabel(f"step k (of T = {T})", fontsize=9)
    sec.tick_params(labelsize=8)
    sec.xaxis.set_major_locator(MaxNLocator("auto", steps=[1, 2, 2.5, 5, 10], integer=True))  # k: no "2.5"


def _noise_floor(ax) -> None:
    ax.axhline(NOISE_FLOOR_DB, ls="--", color=REFERENCE_COLOR, lw=1.0, label=f"noise floor target ({style.fmt_db(NOISE_FLOOR_DB)})")


def _snr_ylim(ax, *curves) -> None:
    """Fit the finite SNR values (k = 0 is +inf, a flow path ends at -inf) and the floor line."""
    finite = np.concatenate([c[np.isfinite(c)] for c in curves] + [np.array([NOISE_FLOOR_DB])])
    lo, hi = finite.min(), finite.max()
    pad = 0.06 * (hi - lo if hi > lo else 10.0)
    ax.set_ylim(lo - pad, hi + pad)


def _terminal(s: Schedule) -> tuple[float, float]:
    return float(s.alpha_bars[-1]), s.terminal_snr_db()


def _fmt_ab(v: float) -> str:
    return "0" if v == 0 else f"{v:.3f}" if v >= 0.01 else f"{v:.1e}"


def _schedule_figure(schedule: Schedule):
    s = _check_schedule(schedule)
    T = s.T
    k = np.arange(T + 1)
    t = k / T
    ab = _np(s.alpha_bars)
    betas = _np(s.betas)
    snr_db = _np(s.snr_db)
    fig = new_figure((15.0, 4.4), layout="constrained")
    ax_b, ax_a, ax_s = fig.subplots(1, 3)

    if s.is_chain:
        # beta_k lives on steps k = 1..T (the variance added going from k - 1 to k).
        ax_b.plot(t[1:], betas, color=NOISE_COLOR, lw=2, marker="o" if T <= 30 else None, ms=3)
        spiky = betas.max() > 20 * max(np.median(betas), 1e-12)
        if spiky:
            ax_b.set_yscale("log")
        ax_b.set_ylabel("β_k  (noise variance added per step)" + ("  [log scale]" if spiky else ""))
        ax_b.set_title(f"β_k from {betas[0]:.2g} (k = 1) to {betas[-1]:.2g} (k = T)", fontsize=11)

        ax_a.plot(t, ab, color=DATA_COLOR, lw=2, label="ᾱ_k  (signal fraction)")
        ax_a.plot(t, 1 - ab, color=NOISE_COLOR, lw=2, label="1 − ᾱ_k  (noise fraction)")
        ax_a.set_ylabel("fraction of the variance of $x_k$")
        ax_a.set_title(f"signal vs noise: ᾱ_T = {_fmt_ab(ab[-1])}", fontsize=11)
    else:
        # The flow path is not variance preserving: its coefficients, and their squares.
        alphas, sigmas = _np(s.alphas), _np(s.sigmas)
        ax_b.plot(t, alphas, color=DATA_COLOR, lw=2, label="α(t) = 1 − t  (data coefficient)")
        ax_b.plot(t, sigmas, color=NOISE_COLOR, lw=2, label="σ(t) = t  (noise coefficient)")
        ax_b.set_ylabel("coefficient in $x_t = α x_0 + σ ε$")
        ax_b.set_title("the straight path of flow matching", fontsize=11)
        ax_b.legend(fontsize=9, loc="upper center")
        ax_a.plot(t, alphas**2, color=DATA_COLOR, lw=2, label="α²  (variance from the data, per unit)")
        ax_a.plot(t, sigmas**2, color=NOISE_COLOR, lw=2, label="σ²  (variance from the noise)")
        ax_a.plot(t, alphas**2 + sigmas**2, color="0.5", lw=1.2, ls="--", label="α² + σ²  (dips below 1)")
        ax_a.set_ylabel("variance coefficients of $x_t$")
        ax_a.set_title("signal vs noise: α²(1) = 0, pure noise", fontsize=11)
    ax_a.set_ylim(-0.03, 1.03)
    ax_a.legend(fontsize=9, loc="best")  # away from where the two curves cross

    finite = np.isfinite(snr_db)
    snr_formula = "ᾱ_k / (1 − ᾱ_k)" if s.is_chain else "α² / σ²"
    ax_s.plot(t[finite], snr_db[finite], color="0.15", lw=2, label=f"SNR = {snr_formula}")
    _noise_floor(ax_s)
    snr_T = float(snr_db[-1])
    ok = snr_T <= NOISE_FLOOR_DB  # also True for -inf (a flow path ends in pure noise)
    _snr_ylim(ax_s, snr_db)
    verdict = "below the target: x_T ≈ pure noise" if ok else "above the target: x_T still shows the data"
    label = f"terminal SNR_T = {style.fmt_db(snr_T)}\n({verdict})"
    box = dict(ha="right", va="top", fontsize=9, color=NOISE_COLOR if not ok else "0.15",
               bbox=dict(fc="white", ec="0.7", alpha=0.9))  # fmt: skip
    if np.isfinite(snr_T):
        ax_s.plot([1.0], [snr_T], "o", color=NOISE_COLOR, ms=6, zorder=3, clip_on=False)
        ax_s.annotate(label, xy=(1.0, snr_T), xytext=(0.97, 0.95), textcoords="axes fraction",
                      arrowprops=dict(arrowstyle="->", color="0.4", lw=0.8), **box)  # fmt: skip
    else:
        ax_s.text(0.97, 0.95, label, transform=ax_s.transAxes, **box)
    ax_s.set_ylabel("signal-to-noise ratio (dB)")
    ax_s.set_title(f"SNR = 10·log10({snr_formula})  (k = 0 is +∞, not drawn)", fontsize=11)
    ax_s.legend(fontsize=9, loc="lower left")

    for ax in (ax_b, ax_a, ax_s):
        ax.set_xlabel("time t = k / T   (0 = clean data, 1 = noise)")
        ax.set_xlim(0, 1)
        ax.grid(alpha=0.3)
        _step_axis(ax, T)
    fig.suptitle(f"Noise schedule: {s.name}, T = {T}" if s.is_chain else f"Noise schedule: the flow path, drawn on a grid of T = {T}", fontsize=13)
    return fig


def plot_schedule(schedule: Schedule, path) -> Path:
    """Three panels against t = k/T: beta_k; alpha_bar_k and 1 - alpha_bar_k; SNR in dB.

    The SNR panel marks the terminal SNR and a dashed -20 dB "noise floor target" line.
    """
    return save_figure(_schedule_figure(schedule), path)


def _compare_figure(schedules: Sequence[Schedule]):
    schedules = [_check_schedule(s) for s in schedules]
    if not schedules:
        raise ValueError("schedules: need at least one Schedule")
    fig = new_figure((13.0, 5.0), layout="constrained")
    ax_a, ax_s = fig.subplots(1, 2)
    snrs = []
    for i, s in enumerate(schedules):
        color = style.line_color(i)
        t = np.arange(s.T + 1) / s.T
        ab = _np(s.alpha_bars)
        snr = _np(s.snr_db)
        snrs.append(snr)
        ab_T, snr_T = _terminal(s)
        name = f"{s.name} (T = {s.T})" if len({x.T for x in schedules}) > 1 else s.name
        ax_a.plot(t, ab, color=color, lw=2, label=f"{name}: ᾱ_T = {_fmt_ab(ab_T)}")
        fin = np.isfinite(snr)
        ax_s.plot(t[fin], snr[fin], color=color, lw=2, label=f"{name}: SNR_T = {style.fmt_db(snr_T)}")
        if np.isfinite(snr_T):
            ax_s.plot([1.0], [snr_T], "o", color=color, ms=5, clip_on=False)
    _noise_floor(ax_s)
    _snr_ylim(ax_s, *snrs)

    ax_a.set_ylim(-0.03, 1.03)
    ax_a.set_ylabel("ᾱ_k  (signal fraction of the variance)")
    ax_a.set_title("signal fraction ᾱ: how much of $x_0$ survives at time t", fontsize=11)
    ax_a.legend(fontsize=9, loc="upper right", title="schedule: value at t = 1", title_fontsize=9)
    ax_s.set_ylabel("signal-to-noise ratio (dB)")
    ax_s.set_title("SNR = 10·log10(ᾱ / (1 − ᾱ)); lower at t = 1 is closer to pure noise", fontsize=11)
    ax_s.legend(fontsize=9, loc="upper right", title="schedule: value at t = 1", title_fontsize=9)
    for ax in (ax_a, ax_s):
        ax.set_xlabel("time t = k / T   (0 = clean data, 1 = noise)")
        ax.set_xlim(0, 1.02)
        ax.grid(alpha=0.3)
    Ts = sorted({s.T for s in schedules})
    fig.suptitle("Noise schedules compared" + (f" (T = {Ts[0]})" if len(Ts) == 1 else ""), fontsize=13)
    return fig


def plot_schedules_compare(schedules: Sequence[Schedule], path) -> Path:
    """alpha_bar vs t and SNR (dB) vs t for several schedules, with alpha_bar_T and SNR_T in the legend."""
    return save_figure(_compare_figure(list(schedules)), path)


# --- training loss -----------------------------------------------------------------------------


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` values (shorter at the start), same length as ``values``."""
    c = np.cumsum(np.insert(values, 0, 0.0))
    n = np.arange(1, len(values) + 1)
    lo = np.maximum(n - window, 0)
    return (c[n] - c[lo]) / (n - lo)


def _loss_figure(losses, *, smooth=None):
    if hasattr(losses, "detach"):
        losses = losses.detach().cpu().numpy()
    y = np.asarray(losses, dtype=np.float64)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"losses: expected a non-empty 1D sequence (one value per step), got shape {y.shape}")
    if smooth is None:
        window = max(min(10, len(y)), len(y) // 50)
    elif isinstance(smooth, (int, np.integer)) and not isinstance(smooth, bool) and smooth >= 1:
        window = int(smooth)
    else:
        raise ValueError(f"smooth must be an integer window >= 1 (steps) or None, got {smooth!r}")
    steps = np.arange(1, len(y) + 1)
    ok = np.isfinite(y)
    positive = ok & (y > 0)
    fig = new_figure((8.0, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.plot(steps[ok], y[ok], color=DATA_COLOR, alpha=0.3, lw=0.8, label="loss per step")
    clean = np.where(ok, y, np.nan)
    if window > 1 and ok.any():
        filled = np.where(ok, y, np.nanmean(clean))
        ax.plot(steps, moving_average(filled, window), color=DATA_COLOR, lw=2,
                label=f"moving average ({window} steps)")  # fmt: skip
    if positive.all():
        ax.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}".lstrip("0.")[:1] in ("2", "3", "5") else ""))
    ax.set_xlabel("training step")
    ax.set_ylabel("loss (MSE)" + (", log scale" if positive.all() else ""))
    ax.grid(alpha=0.3, which="both")
    ax.set_xlim(1, max(len(y), 2))
    tail = clean[-max(window, 1):]
    last = float(np.nanmean(tail)) if np.isfinite(tail).any() else float("nan")
    extra = f";  {int((~ok).sum())} non-finite steps not drawn" if (~ok).any() else ""
    ax.set_title(f"Training loss: {len(y)} steps; mean of the last {min(window, len(y))}: {last:.4g}{extra}", fontsize=12)
    ax.legend(fontsize=9, loc="upper right")
    return fig


def plot_loss(losses, path, *, smooth: int | None = None) -> Path:
    """Training loss per step: the raw curve (light) and a trailing moving average, log y axis.

    ``smooth`` is the averaging window in steps (default: 2% of the run, at least 10 steps).
    """
    return save_figure(_loss_figure(losses, smooth=smooth), path)


def plot_loss_by_noise(
    snr_db, x0_mse, path, *, reference: float | None = None, density=None, title: str = "", note: str = ""
) -> Path:
    """The trained model's unweighted x0-error against the noise level (SNR in dB), and, for a run
    trained with importance-sampled times, the learned sampling density over t beside it.

    ``density`` is (bin edges in t, probability per unit t of each bin) or None; ``reference`` is
    the error of predicting the data's mean (drawn dashed)."""
    snr_db, mse = _np(snr_db), _np(x0_mse)
    if snr_db.shape != mse.shape or snr_db.ndim != 1:
        raise ValueError(f"snr_db and x0_mse: expected two 1D arrays of the same length, got {snr_db.shape} and {mse.shape}")
    panels = 2 if density is not None else 1
    fig = new_figure((6.2 * panels, 4.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, panels))
    ax = axes[0]
    ax.plot(snr_db, mse, "o-", color=DATA_COLOR, ms=3.5, lw=1.5, label="trained model (EMA weights)")
    if reference is not None:
        ax.axhline(reference, ls="--", color=REFERENCE_COLOR, lw=1.0, label=f"predicting the data mean ({reference:.3g})")
    if (mse > 0).all():
        ax.set_yscale("log")
    ax.invert_xaxis()  # clean data on the left, noise on the right, as t runs
    ax.set_xlabel("SNR (dB) = 10 log10(alpha² / sigma²); noise increases →")
    ax.set_ylabel("mean squared x0-error per coordinate, unweighted")
    ax.set_title("Error of the clean estimate by noise level (not clipped)", fontsize=11)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9, loc="lower right")
    if density is not None:
        edges, dens = (np.asarray(v, dtype=np.float64) for v in density)
        ax2 = axes[1]
        ax2.stairs(dens, edges, color=NOISE_COLOR, lw=1.8, fill=True, alpha=0.35, label="learned p(t)")
        ax2.stairs(dens, edges, color=NOISE_COLOR, lw=1.8)
        ax2.axhline(1.0, ls="--", color=REFERENCE_COLOR, lw=1.0, label="uniform time")
        ax2.set_xlim(0, 1)
        ax2.set_ylim(0, max(1.2, float(dens.max()) * 1.15))
        ax2.set_xlabel("training time t (0 = data, 1 = noise)")
        ax2.set_ylabel("sampling density per unit t")
        ax2.set_title(f"Importance sampling of t: {len(dens)} bins, at the last checkpoint", fontsize=11)
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=9, loc="upper right")
    if title:
        import textwrap

        fig.suptitle("\n".join(textwrap.wrap(title, 75 * panels) + ([note] if note else [])), fontsize=11)
    return save_figure(fig, path)
