"""GTA V's frame and rotation conventions, and their conversion into playmill's canonical Unreal frame.

All functions are pure, float64 and vectorised over leading axes (one row per tick).

GTA V world frame
    Right-handed, Z up, X east, Y north, metres. An entity's body axes are +X right, +Y forward, +Z up.
    *Heading* (``Entity.Heading``, ``GET_ENTITY_HEADING``) is in degrees [0, 360), counter-clockwise seen from
    above, 0 = facing north (+Y), 90 = facing west (-X): forward = (-sin h, cos h, 0).
    *Rotation* (``Entity.Rotation``, ``GET_ENTITY_ROTATION``/``GET_CAM_ROT`` with rotation order 2 = YXZ) is the
    Euler vector [x, y, z] in degrees with x = pitch about the body's right axis (nose up +), y = roll about the
    forward axis (+ tilts the up axis towards the right), z = yaw = heading wrapped to (-180, 180]. The matrix
    is R = Rz(z) Rx(x) Ry(y), standard right-handed rotations about the world axes (columns of R are the body
    right, forward and up axes in world coordinates).
    *Quaternion* (``Entity.Quaternion``, ``GET_ENTITY_QUATERNION``): (x, y, z, w) of the same rotation.
    *Steering* (``Vehicle.SteeringAngle``): degrees of the front wheels, + = left (counter-clockwise, the
    right-handed sense about +Z, the same sense as heading); :func:`gta_bridge.keys.detect_steering_sign`
    checks this against the yaw rate of every recording.

Unreal (canonical, DESIGN.md section 2)
    Left-handed, Z up, X forward, Y right, centimetres; rotators (pitch, yaw, roll) in degrees, yaw turning
    +X towards +Y (clockwise from above), pitch lifting the nose, roll tilting the up axis towards +Y.

Conversion
    Map GTA north to Unreal +X and GTA east to Unreal +Y: ``P = [[0,1,0],[1,0,0],[0,0,1]]`` (a reflection,
    det -1: this is the handedness change), ``x_ue_cm = 100 * P @ x_gta_m``. Body axes map the same way (GTA
    forward +Y -> Unreal +X, right +X -> +Y), so a GTA rotation matrix R becomes ``P R P``. Conjugating by the
    reflection negates rotation angles and swaps the X/Y axes, so exactly: Unreal pitch = GTA pitch (x),
    Unreal yaw = -GTA yaw (z) (= -heading), Unreal roll = GTA roll (y).
"""

from __future__ import annotations

import numpy as np

from capture.rotations import matrix_to_quat, quat_to_matrix

#: GTA (east, north, up) -> Unreal (forward = north, right = east, up). Symmetric and its own inverse.
P_GTA_TO_UE = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
M_TO_CM = 100.0


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def wrap180(angle_deg):
    """Angles wrapped into [-180, 180) (vectorised; float64)."""
    return (_f64(angle_deg) + 180.0) % 360.0 - 180.0


def gta_euler_to_matrix(euler_deg) -> np.ndarray:
    """Rotation matrices ``float64[..., 3, 3]`` of GTA Euler vectors ``[..., (pitch, roll, yaw)]`` in degrees.

    ``R = Rz(yaw) Rx(pitch) Ry(roll)`` (rotation order 2, YXZ); columns are the body right, forward, up axes.
    """
    e = np.radians(_f64(euler_deg))
    sb, cb = np.sin(e[..., 0]), np.cos(e[..., 0])
    sc, cc = np.sin(e[..., 1]), np.cos(e[..., 1])
    sa, ca = np.sin(e[..., 2]), np.cos(e[..., 2])
    m = np.empty(e.shape[:-1] + (3, 3))
    m[..., 0, 0] = ca * cc - sa * sb * sc
    m[..., 0, 1] = -sa * cb
    m[..., 0, 2] = ca * sc + sa * sb * cc
    m[..., 1, 0] = sa * cc + ca * sb * sc
    m[..., 1, 1] = ca * cb
    m[..., 1, 2] = sa * sc - ca * sb * cc
    m[..., 2, 0] = -cb * sc
    m[..., 2, 1] = sb
    m[..., 2, 2] = cb * cc
    return m


def matrix_to_gta_euler(m) -> np.ndarray:
    """GTA Euler vectors ``[..., (pitch, roll, yaw)]`` (degrees, yaw in (-180, 180]) of rotation matrices."""
    m = _f64(m)
    pitch = np.degrees(np.arcsin(np.clip(m[..., 2, 1], -1.0, 1.0)))
    roll = np.degrees(np.arctan2(-m[..., 2, 0], m[..., 2, 2]))
    yaw = np.degrees(np.arctan2(-m[..., 0, 1], m[..., 1, 1]))
    return np.stack([pitch, roll, yaw], axis=-1)


def gta_quat_xyzw_to_matrix(q) -> np.ndarray:
    """Rotation matrices of GTA quaternions ``[..., (x, y, z, w)]`` (normalised first)."""
    q = _f64(q)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return quat_to_matrix(q[..., [3, 0, 1, 2]])  # the same algebra in (w, x, y, z) order


def heading_forward(heading_deg) -> np.ndarray:
    """Unit forward vectors ``[..., 3]`` (GTA frame) of headings in degrees (counter-clockwise from north)."""
    h = np.radians(_f64(heading_deg))
    return np.stack([-np.sin(h), np.cos(h), np.zeros_like(h)], axis=-1)


def gta_position_to_ue_cm(p_m) -> np.ndarray:
    """GTA positions ``[..., 3]`` in metres -> Unreal positions in centimetres (X north, Y east, Z up)."""
    p = _f64(p_m)
    return np.stack([p[..., 1], p[..., 0], p[..., 2]], axis=-1) * M_TO_CM


def gta_vector_to_ue_cm(v_m) -> np.ndarray:
    """GTA vectors (velocities in m/s, offsets in m) -> Unreal vectors in cm/s or cm."""
    return gta_position_to_ue_cm(v_m)


def gta_matrix_to_ue_matrix(r) -> np.ndarray:
    """GTA rotation matrices -> Unreal rotation matrices (``P R P``; columns = forward, right, up)."""
    r = _f64(r)
    return P_GTA_TO_UE @ r @ P_GTA_TO_UE


def gta_euler_to_ue_rotator(euler_deg) -> np.ndarray:
    """GTA Euler ``[..., (pitch, roll, yaw)]`` -> Unreal rotators ``[..., (pitch, yaw, roll)]`` (exact)."""
    e = _f64(euler_deg)
    return np.stack([e[..., 0], -e[..., 2], e[..., 1]], axis=-1)


def ue_quat_to_pitch_yaw(q) -> tuple[np.ndarray, np.ndarray]:
    """Unreal pitch and yaw (degrees; yaw in (-180, 180]) of the forward axis of quaternions ``(w, x, y, z)``."""
    m = quat_to_matrix(q)
    fwd = m[..., :, 0]
    pitch = np.degrees(np.arctan2(fwd[..., 2], np.hypot(fwd[..., 0], fwd[..., 1])))
    yaw = np.degrees(np.arctan2(fwd[..., 1], fwd[..., 0]))
    return pitch, yaw


def rig_pose_gta(body_pos_m, body_matrix, offset_m, rotation_offset_deg) -> tuple[np.ndarray, np.ndarray]:
    """A camera rig in the GTA frame: ``Camera_position = Body_position + R_body @ offset`` (metres) and
    ``R_camera = R_body @ R(rotation_offset)``. Returns ``(position_m [..., 3], R_camera [..., 3, 3])``."""
    body_pos_m = _f64(body_pos_m)
    body_matrix = _f64(body_matrix)
    off = _f64(offset_m)
    pos = body_pos_m + np.einsum("...ij,j->...i", body_matrix, off)
    r_off = gta_euler_to_matrix(_f64(rotation_offset_deg))
    return pos, body_matrix @ r_off


def gta_pose_to_ue(position_m, matrix) -> tuple[np.ndarray, np.ndarray]:
    """A GTA pose (position in m, rotation matrix) -> Unreal ``(position_cm, quat_wxyz)``."""
    return gta_position_to_ue_cm(position_m), matrix_to_quat(gta_matrix_to_ue_matrix(matrix))
