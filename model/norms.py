"""Normalisation layers shared by the DiT and the action module."""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last dimension (Wan's ``WanRMSNorm``).

    y = x / sqrt(mean(x^2) + eps) * weight, computed in float32 and cast back to x's dtype.

    ``apply_weight=False`` reproduces Matrix-Game 2.0's action module, whose norm owns a ``weight`` parameter
    (present in the checkpoints) but never multiplies by it. The parameter is then kept only so checkpoints load
    strictly, and is frozen (``requires_grad=False``) so optimisers and DDP do not see an unused parameter.
    """

    def __init__(self, dim: int, eps: float = 1e-6, apply_weight: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.apply_weight = apply_weight
        self.weight = nn.Parameter(torch.ones(dim), requires_grad=apply_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        y = (xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)).type_as(x)
        return y * self.weight if self.apply_weight else y

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, apply_weight={self.apply_weight}"
