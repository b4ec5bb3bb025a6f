"""Dead units folded away: an exact simplification that spends no accuracy.

Pruning often leaves a hidden unit with no inputs: every weight of its row in a linear layer
``A`` is zero (LeNet5 with DNS at a 1% error budget: 101 of FC-0's 500 units). Its output is then
the constant ``act(bias)``, whatever the input, so the next linear layer ``B`` reads a constant
from it: ``B`` computes the same function with that column of its weight zeroed and
``B.weight[:, unit] * act(bias)`` added to its bias, and the unit's own bias no longer matters
(set to zero). The zeros cost almost nothing in the file (a sparse record), where the column
of dense weights cost 4-8 bits a weight.

The graph comes from ``torch.fx`` (a model it cannot trace is left as it is): ``A`` and ``B``
are ``nn.Linear`` modules joined by a chain of elementwise operations (activations, dropout,
identity, a 1-D batch norm as at inference), each used only by the next, so no other consumer
sees the unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Folded", "fold_dead_units"]


@dataclass(frozen=True)
class Folded:
    """One fold: ``units`` dead outputs of linear layer ``source`` (its weight's name) removed
    from the inputs of ``target`` (the next linear layer's weight name)."""

    source: str
    target: str
    units: int


def _elementwise() -> tuple[tuple, tuple, tuple]:
    """(module types, functions, tensor method names) that act on each value on its own."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    modules = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Tanh,
               nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Identity, nn.Dropout,
               nn.BatchNorm1d)
    functions = (F.relu, torch.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish,
                 torch.tanh, F.tanh, torch.sigmoid, F.sigmoid, F.hardtanh, F.hardswish, F.hardsigmoid, F.softplus)
    return modules, functions, ("relu", "tanh", "sigmoid")


def _step(node: Any, prev: Any, modules: dict[str, Any], kinds: tuple[tuple, tuple, tuple]) -> bool:
    """Whether ``node`` is an elementwise operation on ``prev`` alone."""
    from torch.fx import Node

    others = [a for a in [*node.args, *node.kwargs.values()] if isinstance(a, Node) and a is not prev]
    if others or not node.args or node.args[0] is not prev:
        return False
    if node.op == "call_module":
        return isinstance(modules.get(node.target), kinds[0])
    if node.op == "call_function":
        return node.target in kinds[1]
    return node.op == "call_method" and node.target in kinds[2]


def _apply(node: Any, x: Any, modules: dict[str, Any]) -> Any:
    """``node``'s operation on ``x`` in inference (dropout: none)."""
    from torch import nn

    if node.op == "call_module":
        mod = modules[node.target]
        if isinstance(mod, nn.Dropout):
            return x
        was = mod.training
        try:
            return mod.eval()(x)  # a batch norm as at inference (its running statistics)
        finally:
            mod.train(was)
    if node.op == "call_function":
        return node.target(x, *node.args[1:], **node.kwargs)
    return getattr(x, node.target)(*node.args[1:], **node.kwargs)


def fold_dead_units(model: Any, skip: "set[str] | frozenset[str]" = frozenset()) -> list[Folded]:
    """Fold the dead units of every linear layer into the next linear layer, in place (see the
    module docstring); a layer whose weight name is in ``skip`` (already stored) is never changed.
    Returns what was folded (empty when the model cannot be traced or has no dead unit)."""
    import torch
    from torch import nn

    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception:  # noqa: BLE001 - any model torch.fx cannot trace is simply left alone
        return []
    modules = dict(gm.named_modules())
    kinds = _elementwise()
    done: list[Folded] = []
    for node in gm.graph.nodes:
        if node.op != "call_module" or type(modules.get(node.target)) is not nn.Linear:
            continue
        chain, cur = [], node
        while len(cur.users) == 1:
            nxt = next(iter(cur.users))
            if nxt.op == "call_module" and type(modules.get(nxt.target)) is nn.Linear and nxt.args[0] is cur \
                    and len(nxt.args) == 1 and not nxt.kwargs:
                folded = _fold(modules[node.target], modules[nxt.target], chain, modules,
                               f"{node.target}.weight", f"{nxt.target}.weight", skip)
                if folded is not None:
                    done.append(folded)
                break
            if not _step(nxt, cur, modules, kinds):
                break
            chain.append(nxt)
            cur = nxt
    return done


def _fold(a: Any, b: Any, chain: list, modules: dict[str, Any], a_name: str, b_name: str,
          skip: "set[str] | frozenset[str]") -> Folded | None:
    import torch

    if b_name in skip:
        return None
    a_bias = a_name[: -len("weight")] + "bias"
    with torch.no_grad():
        dead = (a.weight == 0).all(dim=1)
        if not bool(dead.any()):
            return None
        x = (a.bias.detach().clone() if a.bias is not None else torch.zeros(a.out_features, dtype=a.weight.dtype))[None]
        for step in chain:
            x = _apply(step, x, modules)
        const = x[0].to(b.weight.dtype)
        if b.bias is None:
            dead &= const == 0  # nothing to carry the constant: only units that give zero fold
        dead &= (b.weight != 0).any(dim=0)  # a column already zero has nothing to fold
        if not bool(dead.any()):
            return None
        cols = dead.nonzero().flatten()
        if b.bias is not None:
            b.bias.add_(b.weight[:, cols] @ const[cols])
        b.weight[:, cols] = 0
        if a.bias is not None and a_bias not in skip:
            a.bias[cols] = 0
    return Folded(a_name, b_name, int(cols.numel()))
