"""The public augmentation ops: one function per op of the op table, batched, each sample with its own
argument.

Every op takes ``x``, a ``(B,C,H,W)`` uint8 tensor with ``C`` in {1, 3} on any device, and returns a
new tensor of the same shape and dtype. A per-sample argument is a ``(B,)`` tensor or a Python number
(the same for all samples). Sample ``i`` of the result is what Pillow gives for image ``i`` (mode "L"
for one channel, "RGB" for three) with argument ``i``; each docstring names the reference call.

The functions are made here from the op table (:mod:`kdforaa.augment.op_table`), one per ``OpSpec``:
its arguments' names, bounds and defaults are the function's parameters and checks, its ``reference``
is the docstring. A colour op runs its torch kernel (:mod:`kdforaa.augment.kernels`); a geometric op
also takes ``fill`` and ``interpolation`` and resamples through its inverse map with
:func:`kdforaa.augment.resample.warp`. So ``ops.rotate(x, degrees, fill=0, interpolation="nearest")``,
``ops.posterize(x, bits)``, ``ops.solarize_add(x, addition, threshold=128)``, ``ops.equalize(x)``, ...
Policies do not come through here: they apply whole op sequences with
:func:`kdforaa.augment.apply.apply_params`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from kdforaa.augment.checks import check_images, per_sample
from kdforaa.augment.op_table import OP_NAMES, OPS, ArgumentSpec, OpSpec
from kdforaa.augment.resample import warp
from kdforaa.errors import BadInput

__all__ = sorted(OP_NAMES)

Argument = torch.Tensor | float
OpFunction = Callable[..., torch.Tensor]


def _argument(value: Argument, x: torch.Tensor, spec: ArgumentSpec) -> torch.Tensor:
    """Validate a per-sample argument: ``(B,)`` or ``(1,)`` float64 on the device it came on."""
    name, low, high = spec.name, spec.low, spec.high
    t = per_sample(value, name)
    batch = x.shape[0]
    if t.shape[0] not in (1, batch):
        raise BadInput(
            f"{name} has {t.shape[0]} values for a batch of {batch}: pass a number or a ({batch},) tensor"
        )
    ok = torch.isfinite(t) & (t >= low) & (t <= high)
    if spec.whole:
        ok &= t == t.round()
    if not ok.all():
        kind = "whole number" if spec.whole else "finite number"
        bounds = f" in {low:g}..{high:g}" if math.isfinite(low) and math.isfinite(high) else ""
        bounds = bounds or (f" >= {low:g}" if math.isfinite(low) else "")
        raise BadInput(f"{name} must be a {kind}{bounds}; got {t[~ok][0].item():g}")
    return t


def _signature(spec: OpSpec) -> inspect.Signature:
    """``(x, <the op's arguments>[, fill, interpolation]) -> Tensor``: the public function's parameters."""
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [inspect.Parameter("x", keyword, annotation=torch.Tensor)]
    for argument in spec.arguments:
        default = inspect.Parameter.empty if argument.default is None else argument.default
        parameters.append(inspect.Parameter(argument.name, keyword, default=default, annotation=Argument))
    if spec.kind == "geometric":
        parameters.append(inspect.Parameter("fill", keyword, default=0, annotation=int))
        parameters.append(inspect.Parameter("interpolation", keyword, default="nearest", annotation=str))
    return inspect.Signature(parameters, return_annotation=torch.Tensor)


def _public(spec: OpSpec) -> OpFunction:
    """The checked public function of ``spec``: validates ``x`` and each argument, then runs the op."""
    signature = _signature(spec)

    def op(*args: Any, **kwargs: Any) -> torch.Tensor:
        given = signature.bind(*args, **kwargs)  # a TypeError, as Python's own, for a wrong call
        given.apply_defaults()
        x = given.arguments["x"]
        check_images(x)
        values = [_argument(given.arguments[a.name], x, a) for a in spec.arguments]
        if spec.inverse_map is not None:
            height, width = x.shape[2:]
            matrix = torch.from_numpy(spec.inverse_map(values[0].cpu().numpy(), height, width))
            return warp(x, matrix, given.arguments["fill"], given.arguments["interpolation"])
        if spec.kernel is not None:
            return spec.kernel(x, *values)
        return x.clone()  # identity

    op.__name__ = op.__qualname__ = spec.name
    op.__module__ = __name__
    op.__doc__ = spec.reference
    # inspect and help() read __signature__, which a function type does not declare
    op.__signature__ = signature  # type: ignore[attr-defined]
    op.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    op.__annotations__["return"] = torch.Tensor
    return op


globals().update({spec.name: _public(spec) for spec in OPS})

if TYPE_CHECKING:
    # The functions above are made at import, which a type checker cannot follow: this tells it that
    # every public name of the module (``ops.rotate``, ...) is an op function returning a tensor.
    def __getattr__(name: str) -> OpFunction: ...
