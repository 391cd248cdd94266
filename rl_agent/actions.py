"""The policy's action space: a ``MultiDiscrete`` over the frame action space (keys + discretised mouse).

One policy action is six integers, decoded to a :class:`capture.actions.FrameAction` per frame:

=====  ==========  ===================================================================================
index  component   values
=====  ==========  ===================================================================================
0      move        0 none, 1 forward (``w``), 2 back (``s``)
1      strafe      0 none, 1 left (``a``), 2 right (``d``)
2      sprint      0 off, 1 ``shift`` held (sprint speed when moving)
3      jump        0 off, 1 ``space`` held (jumps when on the ground)
4      yaw         index into ``yaw_bins_deg``: mouse ``d_yaw_deg`` per frame (turn right +)
5      pitch       index into ``pitch_bins_deg``: mouse ``d_pitch_deg`` per frame (look up +)
=====  ==========  ===================================================================================

With the default bins this is ``MultiDiscrete([3, 3, 2, 2, 7, 3])`` (756 joint actions). The keys ``ctrl``,
``lmb`` and ``rmb`` of the default capture action space are never pressed by the policy. An action is
held for ``action_repeat`` frames (see :class:`rl_agent.config.EnvConfig`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from capture.actions import ActionSpace, FrameAction

#: Component names, in order.
COMPONENTS: tuple[str, ...] = ("move", "strafe", "sprint", "jump", "yaw", "pitch")
#: Keys the policy presses; a world's action space must contain all of them.
POLICY_KEYS: tuple[str, ...] = ("w", "s", "a", "d", "shift", "space")
MOVE_KEYS: frozenset[str] = frozenset({"w", "s", "a", "d"})


class InvalidActionError(ValueError):
    """An action that is not an element of the environment's action space."""


class ActionCodec:
    """Maps ``MultiDiscrete`` policy actions to frame actions and back (see the module docstring).

    ``yaw_bins_deg``/``pitch_bins_deg``: strictly increasing mouse deltas in degrees per frame, including 0.
    """

    def __init__(self, yaw_bins_deg: Sequence[float], pitch_bins_deg: Sequence[float]) -> None:
        self.yaw_bins_deg = np.asarray([float(v) for v in yaw_bins_deg], dtype=np.float64)
        self.pitch_bins_deg = np.asarray([float(v) for v in pitch_bins_deg], dtype=np.float64)
        for name, bins in (("yaw_bins_deg", self.yaw_bins_deg), ("pitch_bins_deg", self.pitch_bins_deg)):
            if bins.size == 0 or not np.all(np.isfinite(bins)) or np.any(np.diff(bins) <= 0) or 0.0 not in bins:
                raise ValueError(f"ActionCodec: {name}={bins.tolist()} must be finite, strictly increasing and include 0")
        self.nvec = np.array([3, 3, 2, 2, len(self.yaw_bins_deg), len(self.pitch_bins_deg)], dtype=np.int64)
        self.idle = np.array([0, 0, 0, 0, int(np.argmin(np.abs(self.yaw_bins_deg))),
                              int(np.argmin(np.abs(self.pitch_bins_deg)))], dtype=np.int64)

    @property
    def n_joint(self) -> int:
        """Number of joint actions (product of ``nvec``)."""
        return int(np.prod(self.nvec))

    def space(self):
        """The gymnasium ``MultiDiscrete`` space."""
        from gymnasium import spaces

        return spaces.MultiDiscrete(self.nvec.copy())

    def check(self, action: object) -> np.ndarray:
        """``action`` as ``int64[6]``; :class:`InvalidActionError` saying what is wrong otherwise."""
        try:
            arr = np.asarray(action)
        except Exception as exc:  # pragma: no cover - numpy accepts nearly anything
            raise InvalidActionError(f"action {action!r} is not an array: {exc}") from None
        if arr.shape != (len(COMPONENTS),):
            raise InvalidActionError(f"action {action!r} has shape {arr.shape}; expected ({len(COMPONENTS)},) = "
                                     f"MultiDiscrete({self.nvec.tolist()}) over {list(COMPONENTS)}")
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise InvalidActionError(f"action {arr.tolist()} must be integers; expected MultiDiscrete({self.nvec.tolist()})")
        elif arr.dtype.kind not in "iub":
            raise InvalidActionError(f"action {action!r} has dtype {arr.dtype}; expected integers")
        arr = arr.astype(np.int64)
        bad = np.nonzero((arr < 0) | (arr >= self.nvec))[0]
        if bad.size:
            i = int(bad[0])
            raise InvalidActionError(f"action {arr.tolist()} is not in MultiDiscrete({self.nvec.tolist()}): component {i} "
                                     f"({COMPONENTS[i]}) = {int(arr[i])}, allowed 0..{int(self.nvec[i]) - 1}")
        return arr

    def decode(self, action: object) -> FrameAction:
        """The frame action of a (validated) policy action."""
        a = self.check(action)
        keys = set()
        if a[0] == 1:
            keys.add("w")
        elif a[0] == 2:
            keys.add("s")
        if a[1] == 1:
            keys.add("a")
        elif a[1] == 2:
            keys.add("d")
        if a[2]:
            keys.add("shift")
        if a[3]:
            keys.add("space")
        return FrameAction(frozenset(keys), d_pitch_deg=float(self.pitch_bins_deg[a[5]]),
                           d_yaw_deg=float(self.yaw_bins_deg[a[4]]))

    def encode(self, action: FrameAction) -> np.ndarray:
        """The nearest policy action of any frame action (mouse deltas snap to the nearest bin; ``w`` with
        ``s`` or ``a`` with ``d`` cancel). Used to measure the action entropy of non-policy controllers."""
        k = action.keys
        fwd = ("w" in k) - ("s" in k)
        right = ("d" in k) - ("a" in k)
        return np.array([
            0 if fwd == 0 else (1 if fwd > 0 else 2),
            0 if right == 0 else (2 if right > 0 else 1),
            int("shift" in k), int("space" in k),
            int(np.argmin(np.abs(self.yaw_bins_deg - action.d_yaw_deg))),
            int(np.argmin(np.abs(self.pitch_bins_deg - action.d_pitch_deg))),
        ], dtype=np.int64)

    def joint_index(self, action: np.ndarray) -> int:
        """A single integer in ``[0, n_joint)`` for a policy action (for joint-entropy counts)."""
        return int(np.ravel_multi_index(tuple(int(v) for v in action), tuple(int(n) for n in self.nvec)))

    def check_world_keys(self, action_space: ActionSpace, where: str = "world") -> None:
        """Raise ``ValueError`` when ``action_space`` lacks a key the policy presses."""
        missing = [k for k in POLICY_KEYS if k not in action_space.keys]
        if missing:
            raise ValueError(f"{where}: its action space {list(action_space.keys)} lacks the key(s) {missing} that the "
                             f"policy presses (needs {list(POLICY_KEYS)})")


def move_direction_deg(keys: frozenset[str], yaw_deg: float) -> float | None:
    """World yaw (degrees) of the horizontal move the keys ask for at camera yaw ``yaw_deg``; None if none.

    W/S move along the yaw, D/A to its right/left (yaw + 90 / yaw - 90, Unreal's left-handed frame)."""
    fwd = ("w" in keys) - ("s" in keys)
    right = ("d" in keys) - ("a" in keys)
    if fwd == 0 and right == 0:
        return None
    return float(yaw_deg + np.degrees(np.arctan2(right, fwd)))


def move_speed_cm_s(keys: frozenset[str], walk_cm_s: float, sprint_cm_s: float, crouch_cm_s: float | None = None) -> float:
    """Commanded ground speed (cm/s) of the keys: 0 without a move, crouch (ctrl), sprint (shift) or walk."""
    fwd = ("w" in keys) - ("s" in keys)
    right = ("d" in keys) - ("a" in keys)
    if fwd == 0 and right == 0:
        return 0.0
    if "ctrl" in keys and crouch_cm_s is not None:
        return float(crouch_cm_s)
    return float(sprint_cm_s if "shift" in keys else walk_cm_s)
