"""Replay a recorded episode's actions in a world: the check that the recorded actions are exactly the inputs
that moved the camera, and a way to re-render an episode (another resolution, another weather) from its seed.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from capture.actions import FrameAction
from capture.episode import Episode
from capture.world import Observation, World


def episode_actions(episode: Episode) -> list[FrameAction]:
    """The per-frame :class:`FrameAction` list of an episode (row 0 included; it is idle for recorded worlds)."""
    keys = episode.keyboard()
    mouse = episode.mouse()
    df = episode.actions
    space = episode.action_space
    out = []
    for i in range(len(df)):
        dx = df["mouse_dx"].iat[i]
        dy = df["mouse_dy"].iat[i]
        out.append(FrameAction(keys=space.from_multihot(keys[i]), d_pitch_deg=float(mouse[i, 0]),
                               d_yaw_deg=float(mouse[i, 1]),
                               mouse_dx=None if np.isnan(dx) else float(dx),
                               mouse_dy=None if np.isnan(dy) else float(dy)))
    return out


def replay(world: World, episode: Episode) -> Iterator[Observation]:
    """Reset ``world`` with the episode's seed and step it with the episode's actions, yielding every frame's
    observation (frame 0 first). The world must be of the episode's source and scene."""
    if world.scene != episode.meta.scene:
        raise ValueError(f"episode {episode.meta.episode_id} was recorded in scene {episode.meta.scene!r}, "
                         f"the world is {world.scene!r}")
    actions = episode_actions(episode)
    obs = world.reset(episode.meta.seed)
    yield obs
    for action in actions[1:]:
        obs = world.step(action)
        yield obs


def replay_pose_error(world: World, episode: Episode) -> tuple[float, float]:
    """Max absolute position error (cm) and quaternion component error of a replay against the recording."""
    rec = episode.poses()
    pos_err, quat_err = 0.0, 0.0
    for i, obs in enumerate(replay(world, episode)):
        pos_err = max(pos_err, float(np.max(np.abs(obs.pos_cm - rec[i, :3]))))
        quat_err = max(quat_err, float(np.max(np.abs(obs.quat_wxyz - rec[i, 3:]))))
    return pos_err, quat_err
