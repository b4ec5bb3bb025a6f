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

The other direction is exact too (:func:`drop_unread`): a unit whose column of ``B`` is zero is
never read, so its row of ``A`` can be zero (LeNet-300-100 at the default budget: 29 of FC-0's
units, 654 nonzeros, after FC-1 was pruned).

The same pairs give the whole-model stage its unit cut (:func:`cut_units`): a live unit whose
output barely varies is replaced by its mean, which the next layer's bias takes, so both
layers lose a row and a column. That one is lossy, so the stage decides it under the budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

__all__ = ["Folded", "Dropped", "Pair", "fold_dead_units", "drop_unread", "linear_pairs", "unit_inputs", "live_units",
           "cut_units"]


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


@dataclass(frozen=True)
class Pair:
    """Two linear layers joined by elementwise operations: ``a`` (module name) feeds ``b`` only,
    through ``chain`` (fx nodes of the traced module, whose submodules are the model's). The
    names hold for a copy of the model too (:func:`unit_inputs` and :func:`cut_units` look the
    layers up by name in the model they are given)."""

    a: str
    b: str
    chain: tuple
    modules: dict


def linear_pairs(model: Any) -> list[Pair]:
    """Every linear layer followed, through elementwise operations only (each used only by the
    next), by another linear layer reading nothing else; in graph order. Empty when ``torch.fx``
    cannot trace the model."""
    import torch
    from torch import nn

    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception:  # noqa: BLE001 - any model torch.fx cannot trace is simply left alone
        return []
    modules = dict(gm.named_modules())
    kinds = _elementwise()
    pairs: list[Pair] = []
    for node in gm.graph.nodes:
        if node.op != "call_module" or type(modules.get(node.target)) is not nn.Linear:
            continue
        chain, cur = [], node
        while len(cur.users) == 1:
            nxt = next(iter(cur.users))
            if nxt.op == "call_module" and type(modules.get(nxt.target)) is nn.Linear and nxt.args[0] is cur \
                    and len(nxt.args) == 1 and not nxt.kwargs:
                pairs.append(Pair(str(node.target), str(nxt.target), tuple(chain), modules))
                break
            if not _step(nxt, cur, modules, kinds):
                break
            chain.append(nxt)
            cur = nxt
    return pairs


def fold_dead_units(model: Any, skip: "set[str] | frozenset[str]" = frozenset()) -> list[Folded]:
    """Fold the dead units of every linear layer into the next linear layer, in place (see the
    module docstring); a layer whose weight name is in ``skip`` (already stored) is never changed.
    Returns what was folded (empty when the model cannot be traced or has no dead unit)."""
    done: list[Folded] = []
    for pair in linear_pairs(model):
        folded = _fold(pair.modules[pair.a], pair.modules[pair.b], list(pair.chain), pair.modules,
                       f"{pair.a}.weight", f"{pair.b}.weight", skip)
        if folded is not None:
            done.append(folded)
    return done


@dataclass(frozen=True)
class Dropped:
    """Units of ``source`` (a weight name) that ``target`` never reads, their rows made zero."""

    source: str
    target: str
    rows: Any  # numpy indices of the units


def drop_unread(model: Any, skip: "set[str] | frozenset[str]" = frozenset()) -> list[Dropped]:
    """Zero, in place, the row of every live unit of a linear layer that the next linear layer
    never reads (its column there is zero): the same function, since nothing else sees the
    unit. A layer whose weight name is in ``skip`` is never changed. Returns what was dropped
    (empty when the model cannot be traced or every unit is read)."""
    import torch

    done: list[Dropped] = []
    for pair in linear_pairs(model):
        if f"{pair.a}.weight" in skip:
            continue
        a, b = model.get_submodule(pair.a), model.get_submodule(pair.b)
        if a.weight.shape[0] != b.weight.shape[1]:  # a graph that could not run
            continue
        with torch.no_grad():
            has_row, read = _unit_masks(model, pair)
            rows = torch.nonzero(has_row & ~read).flatten()
            if rows.numel():
                a.weight[rows] = 0
                done.append(Dropped(f"{pair.a}.weight", f"{pair.b}.weight", rows.cpu().numpy()))
    return done


def unit_inputs(model: Any, pair: Pair, batches: Iterable[Any]) -> tuple[Any, Any]:
    """The mean and standard deviation of each input of ``pair.b`` (each unit of ``pair.a`` after
    its elementwise operations) over ``batches`` of model inputs, in evaluation mode."""
    import torch

    b = model.get_submodule(pair.b)
    total, square, count = None, None, 0

    def hook(_mod: Any, args: tuple) -> None:
        nonlocal total, square, count
        x = args[0].detach().double().reshape(-1, args[0].shape[-1])
        total = x.sum(0) if total is None else total + x.sum(0)
        square = (x * x).sum(0) if square is None else square + (x * x).sum(0)
        count += x.shape[0]

    was = model.training
    handle = b.register_forward_pre_hook(hook)
    try:
        model.eval()
        with torch.no_grad():
            for x in batches:
                model(x)
    finally:
        handle.remove()
        model.train(was)
    if not count:
        raise ValueError("no batch to measure the units on")
    mean = total / count
    return mean, (square / count - mean * mean).clamp_min(0).sqrt()


def _unit_masks(model: Any, pair: Pair) -> tuple[Any, Any]:
    """For each unit of ``pair.a`` in ``model``: whether its row of ``a`` is nonzero, and whether
    its column of ``b`` is (``b`` reads it); two boolean tensors."""
    a, b = model.get_submodule(pair.a), model.get_submodule(pair.b)
    return (a.weight != 0).any(dim=1), (b.weight != 0).any(dim=0)


def live_units(model: Any, pair: Pair) -> Any:
    """Which units of ``pair.a`` are live in ``model``: a nonzero row of ``a`` whose column of
    ``b`` is nonzero (a boolean tensor)."""
    has_row, read = _unit_masks(model, pair)
    return has_row & read


def cut_units(model: Any, pair: Pair, keep: float, mean: Any, std: Any) -> Any:
    """Keep the ``keep`` fraction (rounded up) of ``pair.a``'s live units (a nonzero row whose
    column of ``pair.b`` is nonzero) that matter most to ``pair.b``, in place: each of the others
    is replaced by its mean input to ``b`` (``b``'s column times the mean goes into ``b``'s bias,
    the column, ``a``'s row and ``a``'s bias entry become zero). A unit matters by the spread it
    gives ``b``'s outputs: its input's standard deviation times the norm of ``b``'s column.
    Returns the indices of the units cut (a tensor; empty when ``b`` has no bias)."""
    import math

    import torch

    a, b = model.get_submodule(pair.a), model.get_submodule(pair.b)
    with torch.no_grad():
        live = live_units(model, pair)
        n = int(live.sum())
        if b.bias is None or n == 0:
            return torch.zeros(0, dtype=torch.long)
        score = (std.to(b.weight.dtype) * b.weight.norm(dim=0)).masked_fill(~live, math.inf)
        cut = torch.argsort(score, stable=True)[: n - math.ceil(keep * n)]
        b.bias.add_(b.weight[:, cut] @ mean.to(b.weight.dtype)[cut])
        b.weight[:, cut] = 0
        a.weight[cut] = 0
        if a.bias is not None:
            a.bias[cut] = 0
    return cut


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
