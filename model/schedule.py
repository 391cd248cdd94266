"""The timestep shift of Wan 2.1 / SD3 flow matching: pure functions of floats, numpy arrays or tensors.

A noise level (sigma) ``s`` in [0, 1] is drawn or stepped through as ``u`` in [0, 1] and shifted so that more
of the time is spent at high noise::

    s = shift * u / (1 + (shift - 1) * u)          (shift_sigma; shift = 1 is the identity)
    u = s / (shift - (shift - 1) * s)              (inverse_shift: shift_sigma(inverse_shift(s)) == s)

Training draws ``u ~ U(0, 1)`` (:mod:`model.train`), the sampler steps ``u`` from 1 to 0 (:mod:`model.sample`),
the causal student's few-step schedule is the shift of a few ``u`` (:class:`model.causal.CausalConfig`) and
the teacher's ODE grid passes exactly through them (:mod:`model.distill.ode_pairs`).
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["inverse_shift", "shift_sigma", "shifted"]


def shift_sigma(u: Any, shift: float) -> Any:
    """s = shift * u / (1 + (shift - 1) * u): u in [0, 1] -> noise level s in [0, 1] (element-wise)."""
    return shift * u / (1.0 + (shift - 1.0) * u)


def inverse_shift(sigma: Any, shift: float) -> Any:
    """u with shift_sigma(u) = sigma: u = sigma / (shift - (shift - 1) * sigma) (element-wise)."""
    return sigma / (shift - (shift - 1.0) * sigma)


def shifted(levels: Sequence[float], shift: float) -> tuple[float, ...]:
    """:func:`shift_sigma` of each of ``levels``, as a tuple of floats (a few-step schedule)."""
    return tuple(float(shift_sigma(float(u), shift)) for u in levels)
