"""Pure conversions between Panda3D's render frame and the canonical Unreal frame.

Unreal (canonical, DESIGN.md section 2): left-handed, Z up, X forward, Y right, centimetres; rotators
``(pitch_deg, yaw_deg, roll_deg)``. Panda3D: right-handed, Z up, X right, Y forward, metres here
(one Panda3D unit is one metre); orientations ``(h_deg, p_deg, r_deg)``.

The two frames differ by swapping the horizontal axes (a reflection, which is what turns a left-handed
frame into a right-handed one) and a scale of 100:

* positions: ``UE.X = P.Y * 100``, ``UE.Y = P.X * 100``, ``UE.Z = P.Z * 100``;
* rotations: ``H = -yaw`` (Unreal yaw turns right, Panda3D heading turns left), ``P = pitch``
  (both raise the nose), ``R = roll`` (both tilt the up axis towards the right-hand axis).

Everything here is float64 NumPy and works on single vectors or on ``(..., 3)`` arrays.
"""

from __future__ import annotations

import numpy as np

CM_PER_PANDA_UNIT: float = 100.0
"""Centimetres per Panda3D unit: the sandbox renders in metres."""

PANDA_SOURCE_FRAME: str = "panda3d: right-handed, Z up, X right, Y forward, metres"
"""The frame the sandbox renders in, as recorded in meta.json ``source_frame``."""


def _swap_xy(v: np.ndarray) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.shape[-1] != 3:
        raise ValueError(f"expected a 3-vector or an (..., 3) array, got shape {a.shape}")
    return a[..., [1, 0, 2]]


def ue_to_panda_pos(pos_cm: np.ndarray) -> np.ndarray:
    """Unreal position(s) in cm -> Panda3D position(s) in metres."""
    return _swap_xy(pos_cm) / CM_PER_PANDA_UNIT


def panda_to_ue_pos(pos_m: np.ndarray) -> np.ndarray:
    """Panda3D position(s) in metres -> Unreal position(s) in cm."""
    return _swap_xy(pos_m) * CM_PER_PANDA_UNIT


def ue_to_panda_dir(vec: np.ndarray) -> np.ndarray:
    """Unreal direction vector(s) -> Panda3D direction vector(s) (no scaling: directions are unitless)."""
    return _swap_xy(vec)


def panda_to_ue_dir(vec: np.ndarray) -> np.ndarray:
    """Panda3D direction vector(s) -> Unreal direction vector(s)."""
    return _swap_xy(vec)


def ue_rotator_to_panda_hpr(pitch_deg: float, yaw_deg: float, roll_deg: float = 0.0) -> tuple[float, float, float]:
    """Unreal rotator ``(pitch, yaw, roll)`` in degrees -> Panda3D ``(h, p, r)`` in degrees."""
    return -float(yaw_deg), float(pitch_deg), float(roll_deg)


def panda_hpr_to_ue_rotator(h_deg: float, p_deg: float, r_deg: float = 0.0) -> tuple[float, float, float]:
    """Panda3D ``(h, p, r)`` in degrees -> Unreal rotator ``(pitch, yaw, roll)`` in degrees."""
    return float(p_deg), -float(h_deg), float(r_deg)


def ue_yaw_to_panda_heading(yaw_deg: float | np.ndarray) -> float | np.ndarray:
    """Unreal yaw (turn right +) -> Panda3D heading (turn left +), degrees; works on arrays."""
    return -np.asarray(yaw_deg, dtype=np.float64) if np.ndim(yaw_deg) else -float(yaw_deg)
