"""Float64 rotation maths in the canonical Unreal frame (left-handed, Z up, X forward, Y right).

A rotator is ``(pitch_deg, yaw_deg, roll_deg)`` with Unreal's meaning: yaw turns about +Z (towards +Y, i.e.
to the right), pitch raises the nose (positive pitch lifts forward towards +Z), roll banks about the
forward axis (positive roll tilts the up axis towards +Y); applied as roll, then pitch, then yaw, as in
``FRotationMatrix``.
Quaternions are ``(w, x, y, z)``, float64, unit norm.

The formula of ``rotator_to_quat`` is Unreal's ``FRotator::Quaternion``::

    x =  cr*sp*sy - sr*cp*cy        y = -cr*sp*cy - sr*cp*sy
    z =  cr*cp*sy - sr*sp*cy        w =  cr*cp*cy + sr*sp*sy

with ``s*``/``c*`` the sine/cosine of half the pitch (p), yaw (y) and roll (r).
"""

from __future__ import annotations

import numpy as np


def rotator_to_quat(pitch_deg: float, yaw_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """Unit quaternion ``(w, x, y, z)`` of an Unreal rotator given in degrees (float64)."""
    p, y, r = np.radians([float(pitch_deg), float(yaw_deg), float(roll_deg)]) * 0.5
    sp, cp = np.sin(p), np.cos(p)
    sy, cy = np.sin(y), np.cos(y)
    sr, cr = np.sin(r), np.cos(r)
    q = np.array(
        [
            cr * cp * cy + sr * sp * sy,
            cr * sp * sy - sr * cp * cy,
            -cr * sp * cy - sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
        ],
        dtype=np.float64,
    )
    return q / np.linalg.norm(q)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix (acting on column vectors) of a unit quaternion ``(w, x, y, z)``."""
    w, x, y, z = np.asarray(q, dtype=np.float64)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ],
        dtype=np.float64,
    )


def quat_to_rotator(q: np.ndarray) -> tuple[float, float, float]:
    """``(pitch_deg, yaw_deg, roll_deg)`` of a unit quaternion; yaw and roll in (-180, 180], pitch in [-90, 90]."""
    m = quat_to_matrix(q)
    fwd, right, up = m[:, 0], m[:, 1], m[:, 2]
    pitch = np.degrees(np.arctan2(fwd[2], np.hypot(fwd[0], fwd[1])))
    yaw = np.degrees(np.arctan2(fwd[1], fwd[0]))
    # roll: angle of the body's up axis about forward, relative to the un-rolled frame
    cp, sp = np.cos(np.radians(pitch)), np.sin(np.radians(pitch))
    cy, sy = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
    up0 = np.array([-sp * cy, -sp * sy, cp])
    right0 = np.array([-sy, cy, 0.0])
    roll = np.degrees(np.arctan2(np.dot(up, right0), np.dot(up, up0)))
    return float(pitch), float(yaw), float(roll)


def forward_vector(pitch_deg: float, yaw_deg: float) -> np.ndarray:
    """Unit forward (+X body axis) of a rotator, in the Unreal frame."""
    p, y = np.radians(float(pitch_deg)), np.radians(float(yaw_deg))
    return np.array([np.cos(p) * np.cos(y), np.cos(p) * np.sin(y), np.sin(p)], dtype=np.float64)


def wrap_deg(angle_deg: float) -> float:
    """Angle wrapped into (-180, 180]."""
    a = (float(angle_deg) + 180.0) % 360.0 - 180.0
    return 180.0 if a == -180.0 else a
