"""The divergence of a vector field, div f(z) = tr(df/dz), for a batch of points.

exact       one vector-Jacobian product per dimension, each over the whole batch of points:
            e_i^T (df/dz) e_i summed over i, from 8 dimensions on in one batched backward pass
            (torch.autograd.grad with is_grads_batched), else (or where an operation has no
            batching rule) one pass after another.  Exact to rounding; D passes of cost.
hutchinson  Hutchinson's estimator (Hutchinson 1990; FFJORD, Grathwohl et al. 2019, Sec. 3.1):
            tr(J) = E[v^T J v] for any probe v with E[v v^T] = I, averaged over K probes,
            (1 / K) sum_k v_k^T J v_k.  Rademacher probes (entries +-1) have the least variance,
            Var = 2 (||J_s||_F^2 - sum_i J_ii^2) / K with J_s the symmetric part; Gaussian probes
            2 ||J_s||_F^2 / K.  The probes are drawn once per solve from a seeded generator and
            held fixed along it (FFJORD's choice: the estimate is then the exact divergence of one
            fixed stochastic flow, so the adaptive solver sees a smooth field).
"""

from __future__ import annotations

from typing import Callable

import torch

VectorField = Callable[[torch.Tensor], torch.Tensor]  # (B, D) -> (B, D)

PROBES = ("rademacher", "gaussian")


def draw_probes(count: int, shape: tuple[int, ...], kind: str, generator: torch.Generator | None,
                dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:  # fmt: skip
    """``count`` probe vectors for each point, shape (count, *shape), E[v v^T] = I."""
    if not (isinstance(count, int) and count >= 1):
        raise ValueError(f"probes: expected an integer >= 1, got {count!r}")
    if kind == "rademacher":
        bits = torch.randint(0, 2, (count, *shape), generator=generator, dtype=torch.int64)
        return (2 * bits - 1).to(dtype=dtype, device=device)
    if kind == "gaussian":
        return torch.randn((count, *shape), generator=generator, dtype=dtype).to(device)
    raise ValueError(f"unknown probe kind {kind!r}; expected one of {', '.join(PROBES)}")


# From this many vectors on, the backward passes are batched (torch.vmap over the graph): one
# pass, K times the memory.  Fewer go one after another, which needs no vmap (whose first use
# in a process costs seconds of imports).
BATCHED_FROM = 8


def _vjps(out: torch.Tensor, z: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """v^T (d out / d z) for each v in ``vectors`` (K, *z.shape) -> (K, *z.shape)."""
    if len(vectors) >= BATCHED_FROM:
        try:
            (rows,) = torch.autograd.grad(out, z, vectors, is_grads_batched=True)
            return rows
        except RuntimeError:  # an operation without a batching rule: one pass per vector
            pass
    last = len(vectors) - 1
    return torch.stack([torch.autograd.grad(out, z, v, retain_graph=i < last)[0] for i, v in enumerate(vectors)])


def field_and_divergence(f: VectorField, z: torch.Tensor, probes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(z), div f(z)) for points ``z`` (B, *shape): exact without ``probes``, else Hutchinson's
    estimate with ``probes`` (K, B, *shape).  Evaluates f once (with autograd)."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        out = f(z)
        flat = z.shape[0], -1
        if probes is None:
            dim = z[0].numel()
            basis = torch.eye(dim, dtype=z.dtype, device=z.device)  # e_i, i = 1..D
            vectors = basis[:, None, :].expand(dim, z.shape[0], dim).reshape(dim, *z.shape)
            rows = _vjps(out, z, vectors)  # (D, B, *shape): row i is e_i^T J
            div = (rows.reshape(dim, *flat) * vectors.reshape(dim, *flat)).sum(dim=(0, 2))
        else:
            rows = _vjps(out, z, probes)
            div = (rows * probes).reshape(probes.shape[0], *flat).sum(dim=2).mean(dim=0)
    return out.detach(), div.detach()
