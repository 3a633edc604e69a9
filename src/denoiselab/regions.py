"""Regions of point space from a small expression language, for constraint guidance.

A region is one or more comparisons over the coordinates x1, x2, ... (1-based, data units),
joined by ``and``: e.g. ``x1**2 + x2**2 < 1``, ``abs(x1) < 0.5 and x2 > 0``, ``0 < x1 < 1``.
Terms use numbers, x1..xD, + - * / **, unary minus and abs().  The text is parsed with Python's
``ast`` and only these node types are accepted; it is never passed to eval, so no other code can
run.  A region gives ``violation(x) -> (B,)``, the summed amount by which each comparison
fails (0 inside), whose square is a differentiable loss on x0_hat (gradient_guidance.py).
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from typing import Callable

import torch

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv, ast.Pow: operator.pow}
_LESS = (ast.Lt, ast.LtE)
_GREATER = (ast.Gt, ast.GtE)


class RegionError(ValueError):
    """An expression outside the region language; the message says what was not accepted."""


@dataclass(frozen=True)
class Region:
    text: str
    violation: Callable[[torch.Tensor], torch.Tensor]  # points (B, D) -> (B,), 0 inside

    def contains(self, x: torch.Tensor) -> torch.Tensor:
        return self.violation(x) <= 0

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """violation^2: zero with zero gradient inside, smooth at the boundary."""
        return self.violation(x) ** 2


def _term(node: ast.AST, dim: int) -> Callable[[torch.Tensor], torch.Tensor]:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        value = float(node.value)
        return lambda x: torch.full((x.shape[0],), value, dtype=x.dtype, device=x.device)
    if isinstance(node, ast.Name):
        name = node.id
        if len(name) > 1 and name[0] == "x" and name[1:].isdigit() and 1 <= int(name[1:]) <= dim:
            i = int(name[1:]) - 1
            return lambda x: x[:, i]
        raise RegionError(f"unknown name {name!r}; the coordinates are {', '.join(f'x{i + 1}' for i in range(dim))}")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op, left, right = _BINARY[type(node.op)], _term(node.left, dim), _term(node.right, dim)
        return lambda x: op(left(x), right(x))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner, sign = _term(node.operand, dim), -1.0 if isinstance(node.op, ast.USub) else 1.0
        return lambda x: sign * inner(x)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "abs" and len(node.args) == 1 and not node.keywords:
        inner = _term(node.args[0], dim)
        return lambda x: inner(x).abs()
    raise RegionError(f"{ast.unparse(node)!r} is not allowed; use numbers, x1..x{dim}, + - * / **, abs() and comparisons < <= > >=")


def _comparison(node: ast.AST, dim: int) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    if not isinstance(node, ast.Compare):
        raise RegionError(f"{ast.unparse(node)!r} is not a comparison; a region is e.g. x1**2 + x2**2 < 1")
    terms = [_term(node.left, dim)] + [_term(c, dim) for c in node.comparators]
    parts = []
    for op, lo, hi in zip(node.ops, terms[:-1], terms[1:]):
        if isinstance(op, _LESS):
            parts.append(lambda x, lo=lo, hi=hi: torch.relu(lo(x) - hi(x)))
        elif isinstance(op, _GREATER):
            parts.append(lambda x, lo=lo, hi=hi: torch.relu(hi(x) - lo(x)))
        else:
            raise RegionError(f"comparison {type(op).__name__} is not allowed; use < <= > >=")
    return parts


def parse_region(text: str, dim: int) -> Region:
    """The region ``text`` describes over points of dimension ``dim``; RegionError if it is not one."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise RegionError(f"{text!r} is not a valid expression ({exc.msg})") from None
    body = tree.body
    clauses = body.values if isinstance(body, ast.BoolOp) and isinstance(body.op, ast.And) else [body]
    parts = [p for clause in clauses for p in _comparison(clause, dim)]

    def violation(x: torch.Tensor) -> torch.Tensor:
        return sum(p(x) for p in parts)

    return Region(text.strip(), violation)


def region_from(spec, dim: int) -> Region:
    """A region from an expression or a Python callable ``f(x) -> (B,)`` that is <= 0 inside."""
    if isinstance(spec, Region):
        return spec
    if isinstance(spec, str):
        return parse_region(spec, dim)
    if callable(spec):
        return Region(getattr(spec, "__name__", "callable"), lambda x: torch.relu(spec(x)))
    raise RegionError(f"a region is an expression or a callable, got {type(spec).__name__}")
