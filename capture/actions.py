"""The action space: a named key list plus mouse look, and one frame's action.

Conventions (DESIGN.md section 2):

* Keyboard is multi-hot over the action space's named keys: a key is 1 in frame ``i`` when it was held at
  any time during the frame interval ``(t[i-1], t[i]]``.
* Mouse look is ``d_pitch_deg`` (look up +) and ``d_yaw_deg`` (turn right +), in degrees, applied between
  frame ``i-1`` and frame ``i``. Raw device counts (``mouse_dx``, ``mouse_dy``) are kept when a source has them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

DEFAULT_KEYS: tuple[str, ...] = ("w", "s", "a", "d", "space", "shift", "ctrl", "lmb", "rmb")


@dataclass(frozen=True)
class ActionSpace:
    """A named, ordered list of keys. Keyboard state is a multi-hot ``uint8`` vector in this order."""

    keys: tuple[str, ...] = DEFAULT_KEYS

    def __post_init__(self) -> None:
        keys = tuple(str(k) for k in self.keys)
        if not keys:
            raise ValueError("action space: the key list is empty")
        if len(set(keys)) != len(keys):
            dup = sorted({k for k in keys if keys.count(k) > 1})
            raise ValueError(f"action space: duplicate keys {dup}")
        for k in keys:
            if not k or not all(c.isalnum() or c == "_" for c in k) or k != k.lower():
                raise ValueError(f"action space: key name {k!r} must be lower-case letters, digits or '_'")
        object.__setattr__(self, "keys", keys)

    def __len__(self) -> int:
        return len(self.keys)

    def index(self, key: str) -> int:
        """Position of ``key`` in the multi-hot vector; ``KeyError`` naming the allowed keys otherwise."""
        try:
            return self.keys.index(key)
        except ValueError:
            raise KeyError(f"unknown key {key!r}; this action space has {list(self.keys)}") from None

    @property
    def columns(self) -> list[str]:
        """The actions.csv column names of the keys, in order: ``key_<k>``."""
        return [f"key_{k}" for k in self.keys]

    def to_multihot(self, pressed: Iterable[str]) -> np.ndarray:
        """Multi-hot ``uint8[K]`` for a set of pressed key names."""
        out = np.zeros(len(self.keys), dtype=np.uint8)
        for k in pressed:
            out[self.index(k)] = 1
        return out

    def from_multihot(self, vec: Sequence[int] | np.ndarray) -> frozenset[str]:
        """The set of pressed key names of a multi-hot vector."""
        arr = np.asarray(vec)
        if arr.shape != (len(self.keys),):
            raise ValueError(f"multi-hot vector has shape {arr.shape}, expected ({len(self.keys)},)")
        return frozenset(k for k, v in zip(self.keys, arr) if v)

    def to_dict(self) -> dict:
        """The meta.json form: ``{"keys": [...]}``."""
        return {"keys": list(self.keys)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ActionSpace":
        if not isinstance(d, Mapping) or "keys" not in d or not isinstance(d["keys"], (list, tuple)):
            raise ValueError("action_space must be an object with a 'keys' list")
        return cls(tuple(d["keys"]))


@dataclass(frozen=True)
class FrameAction:
    """The input that moved the world from frame ``i-1`` to frame ``i``.

    ``keys``: names held during the frame interval. ``d_pitch_deg``/``d_yaw_deg``: mouse look in degrees
    (look up +, turn right +). ``mouse_dx``/``mouse_dy``: raw device counts when the source has them.
    """

    keys: frozenset[str] = field(default_factory=frozenset)
    d_pitch_deg: float = 0.0
    d_yaw_deg: float = 0.0
    mouse_dx: float | None = None
    mouse_dy: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", frozenset(self.keys))
        for name in ("d_pitch_deg", "d_yaw_deg"):
            v = float(getattr(self, name))
            if not np.isfinite(v):
                raise ValueError(f"FrameAction.{name} must be finite, got {v}")
            object.__setattr__(self, name, v)

    @classmethod
    def idle(cls) -> "FrameAction":
        return cls()
