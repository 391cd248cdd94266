"""Double-precision camera maths in the Unreal frame, and a drift-free first-person camera rig.

Frame and conventions (see ``capture.rotations``): left-handed, Z up, X forward, Y right, centimetres;
rotators ``(pitch, yaw, roll)`` in degrees; quaternions ``(w, x, y, z)`` float64, unit norm. Unreal builds a
rotation as roll (about X), then pitch (about Y), then yaw (about Z)::

    q(pitch, yaw, roll) = q_yaw(yaw) * q_pitch(pitch) * q_roll(roll)          (Hamilton product)
    q_yaw(y)   = (cos y/2, 0, 0,  sin y/2)    yaw turns X towards +Y (right)
    q_pitch(p) = (cos p/2, 0, -sin p/2, 0)    pitch lifts X towards +Z
    q_roll(r)  = (cos r/2, -sin r/2, 0, 0)    roll tilts Z towards +Y

and ``rotate(q, v) = q v q*``; ``quat_to_matrix(q)`` has the body axes (forward, right, up) as columns.

Precision. ``CameraRig`` keeps yaw and pitch as float64 scalars, accumulates mouse deltas and positions with
compensated (Neumaier) summation, and rebuilds the quaternion from the scalars every frame, so neither
rounding nor the roll that frame-to-frame composition of local rotations introduces can accumulate.
``bench/camera.py`` measures it against float32 Euler accumulation and float32 quaternion composition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from capture.rotations import forward_vector, matrix_to_quat, quat_to_matrix, quat_to_rotator, rotator_to_quat, wrap_deg

__all__ = [
    "rotator_to_quat",
    "quat_to_rotator",
    "quat_to_rotator_ue",
    "quat_to_matrix",
    "matrix_to_quat",
    "rotator_to_matrix",
    "matrix_to_rotator",
    "quat_multiply",
    "quat_conjugate",
    "quat_normalize",
    "quat_rotate_vector",
    "quat_angle_deg",
    "forward_vector",
    "normalize_axis_deg",
    "clamp_axis_deg",
    "normalize_rotator",
    "CameraRig",
    "CompensatedSum",
]

_GIMBAL = 0.4999995  # Unreal's SINGULARITY_THRESHOLD in FQuat::Rotator


def normalize_axis_deg(angle_deg: float) -> float:
    """Unreal ``FRotator::NormalizeAxis``: the angle in (-180, 180]."""
    return wrap_deg(angle_deg)


def clamp_axis_deg(angle_deg: float) -> float:
    """Unreal ``FRotator::ClampAxis``: the angle in [0, 360)."""
    a = math.fmod(float(angle_deg), 360.0)
    a = a + 360.0 if a < 0.0 else a
    return 0.0 if a == 360.0 else a


def normalize_rotator(pitch_deg: float, yaw_deg: float, roll_deg: float = 0.0) -> tuple[float, float, float]:
    """Unreal ``FRotator::GetNormalized``: every axis in (-180, 180]."""
    return normalize_axis_deg(pitch_deg), normalize_axis_deg(yaw_deg), normalize_axis_deg(roll_deg)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of ``(w, x, y, z)`` quaternions: the rotation ``b`` then ``a``
    (Unreal's ``FQuat operator*``). Broadcasts over leading axes."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, dtype=np.float64), -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """``(w, -x, -y, -z)``: the inverse rotation of a unit quaternion."""
    q = np.asarray(q, dtype=np.float64)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """``q / |q|`` (raises on a zero or non-finite quaternion)."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    if not np.all(np.isfinite(n)) or np.any(n == 0.0):
        raise ValueError(f"cannot normalise quaternion {q.tolist()}")
    return q / n


def quat_rotate_vector(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``q v q*`` for a unit quaternion, computed as ``v + w t + u x t`` with ``u = (x, y, z)``, ``t = 2 u x v``."""
    q = np.asarray(q, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    u = q[..., 1:]
    t = 2.0 * np.cross(u, v)
    return v + q[..., :1] * t + np.cross(u, t)


def quat_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle of the rotation taking ``a`` to ``b``: ``2 atan2(|vec(r)|, |w(r)|)`` with ``r = a* b``
    (well conditioned near zero, unlike ``2 acos``), in degrees."""
    r = quat_multiply(quat_conjugate(a), b)
    return float(np.degrees(2.0 * math.atan2(float(np.linalg.norm(r[1:])), abs(float(r[0])))))


def rotator_to_matrix(pitch_deg: float, yaw_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """Unreal ``FRotationMatrix`` (columns = forward, right, up; acts on column vectors), float64.

    With ``S/C`` the sine/cosine of pitch (P), yaw (Y), roll (R)::

        forward = ( CP CY,             CP SY,             SP    )
        right   = ( SR SP CY - CR SY,  SR SP SY + CR CY, -SR CP )
        up      = (-(CR SP CY + SR SY), CY SR - CR SP SY, CR CP )
    """
    p, y, r = np.radians([float(pitch_deg), float(yaw_deg), float(roll_deg)])
    sp, cp, sy, cy, sr, cr = np.sin(p), np.cos(p), np.sin(y), np.cos(y), np.sin(r), np.cos(r)
    fwd = [cp * cy, cp * sy, sp]
    right = [sr * sp * cy - cr * sy, sr * sp * sy + cr * cy, -sr * cp]
    up = [-(cr * sp * cy + sr * sy), cy * sr - cr * sp * sy, cr * cp]
    return np.array([fwd, right, up], dtype=np.float64).T


def matrix_to_rotator(m: np.ndarray) -> tuple[float, float, float]:
    """Unreal ``FMatrix::Rotator``: pitch/yaw from the forward axis, roll from the up axis against the
    un-rolled right axis ``Y0``: ``roll = atan2(up . Y0, right . Y0)``."""
    m = np.asarray(m, dtype=np.float64)
    fwd, right, up = m[:, 0], m[:, 1], m[:, 2]
    pitch = math.degrees(math.atan2(fwd[2], math.hypot(fwd[0], fwd[1])))
    yaw = math.degrees(math.atan2(fwd[1], fwd[0]))
    y0 = rotator_to_matrix(pitch, yaw, 0.0)[:, 1]
    roll = math.degrees(math.atan2(float(up @ y0), float(right @ y0)))
    return pitch, yaw, roll


def quat_to_rotator_ue(q: np.ndarray) -> tuple[float, float, float]:
    """Unreal ``FQuat::Rotator``, including its gimbal-lock branch: with ``s = z x - w y``, if
    ``|s| > 0.4999995`` pitch is +-90 and yaw/roll are split as ``roll = +-yaw - 2 atan2(x, w)``; otherwise
    ``pitch = asin(2 s)``, ``yaw = atan2(2(w z + x y), 1 - 2(y^2 + z^2))``,
    ``roll = atan2(-2(w x + y z), 1 - 2(x^2 + y^2))``."""
    w, x, y, z = (float(c) for c in np.asarray(q, dtype=np.float64))
    s = z * x - w * y
    yaw = math.degrees(math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))
    if s < -_GIMBAL:
        return -90.0, yaw, normalize_axis_deg(-yaw - 2.0 * math.degrees(math.atan2(x, w)))
    if s > _GIMBAL:
        return 90.0, yaw, normalize_axis_deg(yaw - 2.0 * math.degrees(math.atan2(x, w)))
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, 2.0 * s))))
    roll = math.degrees(math.atan2(-2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y)))
    return pitch, yaw, roll


@dataclass
class CompensatedSum:
    """Neumaier summation: ``value = hi + lo`` where ``lo`` collects the rounding error of each addition
    (``t = hi + x``; ``lo += (hi - t) + x`` if ``|hi| >= |x|`` else ``(x - t) + hi``). Error O(eps) instead of
    O(n eps) after n additions."""

    hi: float = 0.0
    lo: float = 0.0

    def add(self, x: float) -> None:
        t = self.hi + x
        if abs(self.hi) >= abs(x):
            self.lo += (self.hi - t) + x
        else:
            self.lo += (x - t) + self.hi
        self.hi = t

    @property
    def value(self) -> float:
        return self.hi + self.lo

    def set(self, x: float) -> None:
        self.hi, self.lo = float(x), 0.0


@dataclass
class CameraRig:
    """First-person camera: float64 yaw/pitch scalars (pitch clamped to +-``pitch_limit_deg``, roll 0) and a
    float64 position in cm; the quaternion is rebuilt from the scalars on demand (never composed).

    ``look(d_pitch, d_yaw)`` applies a mouse delta (look up +, turn right +); ``move(v, dt)`` integrates a
    world velocity (cm/s); ``move_local(forward, right, up, dt)`` a velocity relative to the yaw heading
    (walking: pitch does not tilt the motion)."""

    pos_cm: np.ndarray = field(default_factory=lambda: np.zeros(3))
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    pitch_limit_deg: float = 89.9  # Unreal's default ViewPitchMin/Max

    def __post_init__(self) -> None:
        p = np.asarray(self.pos_cm, dtype=np.float64).reshape(3)
        if not np.all(np.isfinite(p)) or not math.isfinite(self.yaw_deg) or not math.isfinite(self.pitch_deg):
            raise ValueError("camera pose must be finite")
        self._pos = [CompensatedSum(float(c)) for c in p]
        self._yaw = CompensatedSum(wrap_deg(self.yaw_deg))
        self._pitch = CompensatedSum(self._clamp(self.pitch_deg))
        self._sync()

    def _clamp(self, pitch: float) -> float:
        lim = self.pitch_limit_deg
        return min(lim, max(-lim, float(pitch)))

    def _sync(self) -> None:
        self.yaw_deg = wrap_deg(self._yaw.value)
        self.pitch_deg = self._pitch.value
        self.pos_cm = np.array([s.value for s in self._pos])

    def look(self, d_pitch_deg: float, d_yaw_deg: float) -> None:
        """Add a mouse delta; yaw is wrapped into (-180, 180] (exactly: +-360 is exact in float64 for
        |yaw| < 540), pitch clamped."""
        if not (math.isfinite(d_pitch_deg) and math.isfinite(d_yaw_deg)):
            raise ValueError(f"non-finite look delta ({d_pitch_deg}, {d_yaw_deg})")
        y = self._yaw
        y.add(float(d_yaw_deg))
        if y.hi > 180.0:
            y.hi -= 360.0
        elif y.hi <= -180.0:
            y.hi += 360.0
        p = self._pitch
        p.add(float(d_pitch_deg))
        if abs(p.value) > self.pitch_limit_deg:
            p.set(self._clamp(p.value))
        self._sync()

    def move(self, velocity_cm_s, dt_s: float) -> None:
        """Integrate ``pos += v dt`` per axis with compensated summation."""
        v = np.asarray(velocity_cm_s, dtype=np.float64).reshape(3)
        if not np.all(np.isfinite(v)) or not math.isfinite(dt_s):
            raise ValueError("non-finite velocity or dt")
        for s, vi in zip(self._pos, v.tolist()):
            s.add(vi * dt_s)
        self.pos_cm = np.array([s.value for s in self._pos])

    def move_local(self, forward_cm_s: float, right_cm_s: float, up_cm_s: float, dt_s: float) -> None:
        """Velocity in the heading frame: forward ``(cos yaw, sin yaw, 0)``, right ``(-sin yaw, cos yaw, 0)``,
        up ``(0, 0, 1)``."""
        y = math.radians(self.yaw_deg)
        cy, sy = math.cos(y), math.sin(y)
        self.move((forward_cm_s * cy - right_cm_s * sy, forward_cm_s * sy + right_cm_s * cy, up_cm_s), dt_s)

    def teleport(self, pos_cm=None, *, yaw_deg: float | None = None, pitch_deg: float | None = None) -> None:
        if pos_cm is not None:
            p = np.asarray(pos_cm, dtype=np.float64).reshape(3)
            for s, c in zip(self._pos, p.tolist()):
                s.set(c)
        if yaw_deg is not None:
            self._yaw.set(wrap_deg(yaw_deg))
        if pitch_deg is not None:
            self._pitch.set(self._clamp(pitch_deg))
        self._sync()

    @property
    def rotator(self) -> tuple[float, float, float]:
        return self.pitch_deg, self.yaw_deg, 0.0

    @property
    def quat(self) -> np.ndarray:
        """``rotator_to_quat(pitch, yaw, 0)``, rebuilt from the float64 scalars."""
        return rotator_to_quat(self.pitch_deg, self.yaw_deg, 0.0)

    @property
    def matrix(self) -> np.ndarray:
        return quat_to_matrix(self.quat)

    @property
    def forward(self) -> np.ndarray:
        return forward_vector(self.pitch_deg, self.yaw_deg)
