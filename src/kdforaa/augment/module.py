"""Any policy or pipeline as a ``torch.nn.Module``, to drop into a training loop or an ``nn.Sequential``.

``Augment(policy)`` holds no parameters or buffers: it runs on whatever device its input is on, so
``.to(device)`` changes nothing and its ``state_dict`` is empty (a model containing it saves and loads
as without it). It augments in train and eval mode alike: leave it out of the evaluation path.
"""

from __future__ import annotations

import torch
from torch import nn

from kdforaa.augment.params import AugParams
from kdforaa.augment.policies import Policy
from kdforaa.augment.timm_strings import policy_from_string
from kdforaa.errors import BadInput


class Augment(nn.Module):
    """``policy`` (a :class:`~kdforaa.augment.policies.Policy` or an ``AugmentPipeline``) as a module.

    ``forward(x, generator=None, *, keys=None, return_params=False)`` takes a ``(B,C,H,W)`` batch, uint8
    or float in ``[0, 1]`` (C = 1 or 3), and returns it augmented in the same dtype, on the same device;
    see :meth:`Policy.__call__ <kdforaa.augment.policies.Policy.__call__>` for the keys and the params.
    ``backend`` picks the kernels (:data:`~kdforaa.augment.apply.BACKENDS`; ``auto`` is fastest).
    """

    def __init__(self, policy: Policy, *, backend: str = "auto") -> None:
        super().__init__()
        if not isinstance(policy, Policy):
            raise BadInput(
                f"Augment needs a kdforaa policy (RandAugment, AutoAugment, ...), got "
                f"{type(policy).__name__}; for a timm-style string use Augment.from_string"
            )
        self.policy = policy
        self.backend = backend

    @classmethod
    def from_string(
        cls, spec: str, *, fill: int = 0, interpolation: str = "nearest", backend: str = "auto"
    ) -> Augment:
        """The module of a timm-style string such as ``rand-m9-n2-mstd0.5`` (see
        :func:`~kdforaa.augment.timm_strings.policy_from_string`)."""
        return cls(policy_from_string(spec, fill=fill, interpolation=interpolation), backend=backend)

    def forward(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        keys: torch.Tensor | None = None,
        return_params: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, AugParams]:
        return self.policy(x, generator, keys=keys, backend=self.backend, return_params=return_params)

    def extra_repr(self) -> str:
        return f"{self.policy!r}, backend={self.backend!r}"
