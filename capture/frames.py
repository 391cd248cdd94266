"""Source world frames: how a recording's poses are laid out, and their conversion into the canonical Unreal frame.

A pose source (camera-to-world matrices, positions and quaternions) says three things about its axes, each
declared in its import config as a :class:`WorldFrame`:

* ``up``: the world axis that points up, against gravity (``-y`` for an OpenCV-style world whose y points down,
  ``+y`` for OpenGL, Unity or Minecraft, ``+z`` for Blender, ROS, COLMAP-on-a-level-scene or Unreal);
* ``handedness``: ``right`` (OpenCV, OpenGL, Blender, ROS, Minecraft) or ``left`` (Unreal, Unity);
* ``camera_axes``: what the columns of a camera-to-world rotation are: ``opencv`` (x right, y down, z forward:
  COLMAP, OpenCV, Sekai) or ``opengl`` (x right, y up, z backward: NeRF, Blender cameras). Both are right-handed.

and ``forward``: the horizontal world axis that becomes Unreal's +X (only the origin of yaw; null: the first of
``+z``, ``+x`` that is not vertical). Units are separate (each import has its ``scale_cm``).

The maths (pure functions below). ``W`` (3x3) maps world coordinates to Unreal ones: its rows are the world
vectors of Unreal's X (forward), Y (right) and Z (up): ``f``, ``r = f x u`` (right-handed world; ``u x f`` in a
left-handed one) and ``u``, so ``p_ue = W p`` and ``det W = -1`` for a right-handed world (a reflection: Unreal is
left-handed). ``C`` (3x3) holds, as columns, the camera's forward, right and up axes in camera coordinates
(opencv: ``+z, +x, -y``; opengl: ``-z, +x, +y``; ``det C = -1``). A camera-to-world rotation ``R`` becomes the
Unreal camera rotation ``R_ue = W R C``, whose columns are the camera's forward, right and up in Unreal world
coordinates (:mod:`capture.rotations`). ``det R_ue = det W det R det C = +1`` exactly when ``det R`` matches
the declared handedness (+1 for a right-handed world: both camera conventions are right-handed), so a rotation
whose determinant has the other sign is a frame declared wrong (:func:`handedness_problem`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import model_validator

from capture.settings import Field, Invalid, settings

__all__ = ["AXES", "Axis", "WorldFrame", "axis_vector", "world_to_unreal", "camera_to_body", "rotations_to_unreal",
           "handedness_problem"]

#: A signed world axis.
Axis = Literal["+x", "-x", "+y", "-y", "+z", "-z"]
AXES: tuple[str, ...] = ("+x", "-x", "+y", "-y", "+z", "-z")
CAMERA_AXES: tuple[str, ...] = ("opencv", "opengl")


def axis_vector(axis: str) -> np.ndarray:
    """The unit vector of a signed axis name (``"-y"`` -> ``[0, -1, 0]``)."""
    if axis not in AXES:
        raise ValueError(f"axis {axis!r} is not one of {', '.join(AXES)}")
    v = np.zeros(3)
    v["xyz".index(axis[1])] = 1.0 if axis[0] == "+" else -1.0
    return v


@settings
class WorldFrame:
    """The axes of a recording's world (module doc): which axis is ``up``, the ``handedness``, the
    ``camera_axes`` of its camera-to-world rotations, and the ``forward`` axis that becomes Unreal's +X."""

    up: Axis = Field("-y", description="the world axis pointing up (Sekai/OpenCV: -y; OpenGL, Minecraft: +y; Blender, ROS, Unreal: +z)")
    handedness: Literal["right", "left"] = Field("right", description="right (OpenCV, OpenGL, Blender, Minecraft) or left (Unreal, Unity)")
    camera_axes: Literal[CAMERA_AXES] = Field("opencv", description="camera-to-world columns: opencv (x right, y down, z forward) or opengl (x right, y up, z back)")
    forward: Axis | None = Field(None, description="horizontal world axis that becomes Unreal +X, the yaw origin (null: +z, or +x when z is up)")

    @model_validator(mode="after")
    def _horizontal_forward(self) -> "WorldFrame":
        if self.forward is not None and self.forward[1] == self.up[1]:
            raise Invalid("forward", self.forward, f"a horizontal axis (not along up {self.up})")
        return self

    @property
    def forward_axis(self) -> str:
        """``forward``, or the default: ``+z`` unless z is vertical, then ``+x``."""
        if self.forward is not None:
            return self.forward
        return "+x" if self.up[1] == "z" else "+z"

    def describe(self) -> str:
        """One line for meta.json's ``source_frame``."""
        return (f"{self.handedness}-handed world, up {self.up}, forward {self.forward_axis} (-> Unreal +X); "
                f"camera axes {self.camera_axes}")


def world_to_unreal(frame: WorldFrame) -> np.ndarray:
    """``W`` (3x3): Unreal coordinates of world vectors, ``p_ue = W @ p`` (module doc)."""
    u = axis_vector(frame.up)
    f = axis_vector(frame.forward_axis)
    r = np.cross(f, u) if frame.handedness == "right" else np.cross(u, f)
    return np.stack([f, r, u])


def camera_to_body(camera_axes: str) -> np.ndarray:
    """``C`` (3x3): columns are the camera's forward, right and up in its own axes (module doc)."""
    if camera_axes == "opencv":
        fwd, right, up = (0, 0, 1), (1, 0, 0), (0, -1, 0)
    elif camera_axes == "opengl":
        fwd, right, up = (0, 0, -1), (1, 0, 0), (0, 1, 0)
    else:
        raise ValueError(f"camera axes {camera_axes!r} are not one of {', '.join(CAMERA_AXES)}")
    return np.array([fwd, right, up], dtype=np.float64).T


def rotations_to_unreal(r_c2w: np.ndarray, frame: WorldFrame) -> np.ndarray:
    """Unreal camera rotations ``W R C`` of camera-to-world rotations ``r_c2w`` ([N, 3, 3] or [3, 3]) in ``frame``."""
    return world_to_unreal(frame) @ np.asarray(r_c2w, dtype=np.float64) @ camera_to_body(frame.camera_axes)


def handedness_problem(r_c2w: np.ndarray, frame: WorldFrame) -> str | None:
    """Why the rotations ``r_c2w`` ([N, 3, 3]) cannot be in ``frame``: their determinants must all be +1 in a
    right-handed world and -1 in a left-handed one (the camera conventions are right-handed). None when they fit."""
    det = np.linalg.det(np.asarray(r_c2w, dtype=np.float64).reshape(-1, 3, 3))
    want = 1.0 if frame.handedness == "right" else -1.0
    bad = np.flatnonzero(np.abs(det - want) > 1e-3)
    if not bad.size:
        return None
    other = "left" if frame.handedness == "right" else "right"
    i = int(bad[0])
    return (f"rotation {i} has determinant {det[i]:+.3f} but a {frame.handedness}-handed world needs {want:+.0f} "
            f"({bad.size} of {len(det)} rotations): the world is {other}-handed (set handedness: {other}) or the "
            "matrices are not camera-to-world rotations")
