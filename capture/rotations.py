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


def rotator_to_quat(pitch_deg, yaw_deg, roll_deg=0.0) -> np.ndarray:
    """Unit quaternions ``(w, x, y, z)`` of Unreal rotators given in degrees (float64); scalars give shape (4,),
    arrays broadcast to ``[..., 4]``."""
    p, y, r = (np.radians(np.asarray(v, dtype=np.float64)) * 0.5 for v in (pitch_deg, yaw_deg, roll_deg))
    sp, cp = np.sin(p), np.cos(p)
    sy, cy = np.sin(y), np.cos(y)
    sr, cr = np.sin(r), np.cos(r)
    q = np.stack(np.broadcast_arrays(
        cr * cp * cy + sr * sp * sy,
        cr * sp * sy - sr * cp * cy,
        -cr * sp * cy - sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
    ), axis=-1)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quat_to_matrix(q) -> np.ndarray:
    """3x3 rotation matrices (acting on column vectors) of unit quaternions ``(w, x, y, z)``: shape (4,) gives
    (3, 3), ``[..., 4]`` gives ``[..., 3, 3]``."""
    q = np.asarray(q, dtype=np.float64)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    m = np.empty(q.shape[:-1] + (3, 3))
    m[..., 0, 0] = 1 - 2 * (y * y + z * z)
    m[..., 0, 1] = 2 * (x * y - w * z)
    m[..., 0, 2] = 2 * (x * z + w * y)
    m[..., 1, 0] = 2 * (x * y + w * z)
    m[..., 1, 1] = 1 - 2 * (x * x + z * z)
    m[..., 1, 2] = 2 * (y * z - w * x)
    m[..., 2, 0] = 2 * (x * z - w * y)
    m[..., 2, 1] = 2 * (y * z + w * x)
    m[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return m


def matrix_to_quat(m) -> np.ndarray:
    """Unit quaternions ``(w, x, y, z)`` with ``w >= 0`` of rotation matrices (``(3, 3)`` or ``[..., 3, 3]``),
    float64, by Shepperd's method: the square root is taken of the largest of ``4w^2 = 1 + tr``,
    ``4x^2 = 1 + 2 m00 - tr``, ``4y^2 = 1 + 2 m11 - tr``, ``4z^2 = 1 + 2 m22 - tr`` (well conditioned)."""
    m = np.asarray(m, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    tr = m00 + m11 + m22
    k = np.argmax(np.stack([tr, m00, m11, m22], axis=-1), axis=-1)
    d21, d02, d10 = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    s01, s02, s12 = m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1]
    s = [2.0 * np.sqrt(np.maximum(v, 1e-300)) for v in (1.0 + tr, 1.0 + 2 * m00 - tr, 1.0 + 2 * m11 - tr,
                                                      1.0 + 2 * m22 - tr)]
    cases = [
        (0.25 * s[0], d21 / s[0], d02 / s[0], d10 / s[0]),
        (d21 / s[1], 0.25 * s[1], s01 / s[1], s02 / s[1]),
        (d02 / s[2], s01 / s[2], 0.25 * s[2], s12 / s[2]),
        (d10 / s[3], s02 / s[3], s12 / s[3], 0.25 * s[3]),
    ]
    q = np.zeros(m.shape[:-2] + (4,))
    for i, case in enumerate(cases):
        q = np.where((k == i)[..., None], np.stack(case, axis=-1), q)
    q = np.where(q[..., :1] < 0, -q, q)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


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
