"""The World protocol: anything that renders frames and moves a first-person agent from frame actions.

A source (the sandbox, an UnrealCV endpoint, a replay) implements :class:`World`; a :class:`Controller`
chooses the frame actions. The collection loop (``capture.collect``) joins the two and writes episodes.

Time and frames: ``reset(seed)`` returns frame 0 (``t_s == 0``, no action applied). Each ``step(action)``
advances exactly one video frame (``1 / fps`` seconds) and returns the observation of the new frame,
so an episode of N frames is one reset plus N-1 steps, and row ``i`` of actions.csv is the action that
produced frame ``i`` (row 0 is idle).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from capture.actions import ActionSpace, FrameAction


@dataclass
class Observation:
    """One rendered frame and the agent's state at that frame, in the canonical Unreal frame.

    ``frame``: ``uint8[H, W, 3]`` RGB. ``t_s``: seconds since episode start. ``pos_cm``: camera position,
    float64 cm. ``quat_wxyz``: camera orientation, float64 unit quaternion. ``pitch_deg``/``yaw_deg``:
    the float64 look accumulators the quaternion is built from. ``vel_cm_s``: world velocity, float64 cm/s.
    ``speed_cm_s``: signed ground speed along the camera's forward axis (negative = backwards).
    ``collision``: the agent was blocked this frame. ``extras``: source-specific per-frame values, written
    to actions.csv as ``<source>_<name>`` columns.
    """

    frame: np.ndarray
    t_s: float
    pos_cm: np.ndarray
    quat_wxyz: np.ndarray
    pitch_deg: float
    yaw_deg: float
    vel_cm_s: np.ndarray
    speed_cm_s: float
    collision: bool
    extras: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class World(Protocol):
    """A renderable world with a first-person agent driven by frame actions.

    Attributes: ``source`` (meta.json source name), ``scene`` (scene name), ``fps``, ``width``, ``height``,
    ``action_space``, ``source_frame`` (the frame the source works in before conversion, for meta.json) and
    ``config`` (source parameters recorded in meta.json, e.g. weather, time_of_day, densities).
    """

    source: str
    scene: str
    fps: float
    width: int
    height: int
    action_space: ActionSpace
    source_frame: str
    config: dict[str, Any]

    def reset(self, seed: int) -> Observation:
        """Start a new episode from ``seed`` (deterministic) and return frame 0."""
        ...

    def step(self, action: FrameAction) -> Observation:
        """Apply one frame's action and return the next frame."""
        ...

    def close(self) -> None:
        """Release the renderer and any connection."""
        ...


@runtime_checkable
class Controller(Protocol):
    """Chooses frame actions. ``reset`` is called after each ``World.reset`` with the same seed."""

    def reset(self, seed: int, obs: Observation) -> None: ...

    def act(self, obs: Observation) -> FrameAction: ...
