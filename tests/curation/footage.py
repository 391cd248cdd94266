"""A sandbox episode and its conversion into each footage source's format (the round trips of issue 16).

:func:`sandbox_episode` records, once per test session, a short episode in the sandbox park (real 3-D rendering,
so that the label diagnosis sees real camera motion) driven by :class:`LookAndWalk`: smooth turns and pitch
swings, walking forward and back, strafing both ways. The writers below turn its actions, poses and video into
what other tools produce: a generic CSV in several conventions, VPT JSON lines, Sekai camera files in several
world frames, an Unreal export CSV. Importing them back must give the same keys and mouse.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np

from capture.actions import FrameAction
from capture.episode import Episode, read_episode

FPS = 20.0
FRAMES = 240
W, H = 160, 96
FOV = 90.0


class LookAndWalk:
    """A deterministic controller with everything the diagnosis tests: yaw and pitch that vary smoothly (up to
    about 3 degrees per frame) with a hand's jitter on top (what makes a shift of the rows visible), W, then S,
    then D and A strafes, never W and S or A and D together."""

    plan = [("w", 50), ("s", 25), ("w", 30), ("d", 30), ("w", 25), ("a", 30), ("w", 50)]

    def reset(self, seed: int, obs) -> None:
        self.i = 0
        self.rng = np.random.default_rng(seed)
        self.jitter = np.zeros(2)

    def act(self, obs) -> FrameAction:
        self.i += 1
        t = self.i / FPS
        self.jitter = 0.5 * self.jitter + self.rng.normal(0.0, [0.25, 0.6])  # a hand's short-memory jitter
        d_yaw = 2.6 * math.sin(t * 1.3) + 0.9 * math.sin(t * 3.7 + 1.0) + self.jitter[1]
        d_pitch = 0.9 * math.sin(t * 2.1) - 0.03 * float(obs.pitch_deg) + self.jitter[0]
        k, n = "w", 0
        for key, frames in self.plan:
            n += frames
            if self.i < n:
                k = key
                break
        keys = {k} | ({"shift"} if 60 < self.i < 70 else set())
        return FrameAction(frozenset(keys), d_pitch_deg=d_pitch, d_yaw_deg=d_yaw)


_CACHE: dict[str, Path] = {}


def sandbox_episode(root: Path) -> Episode:
    """The session's sandbox episode (recorded into a cache folder the first time; copied under ``root``)."""
    import tempfile

    from capture.collect import plan_episodes, record_episode
    from unreal_bridge import SandboxWorld

    if "ep" not in _CACHE:
        import atexit

        cache = Path(tempfile.mkdtemp(prefix="playmill-footage-"))
        atexit.register(shutil.rmtree, cache, True)
        (task,) = plan_episodes("sandbox", ["park"], 1, FRAMES, base_seed=5)
        with SandboxWorld("park", width=W, height=H, fps=FPS, fov_deg=FOV, npc_density=0.0,
                          vehicle_density=0.0) as world:
            _CACHE["ep"] = record_episode(world, LookAndWalk(), cache, task, encoder={"crf": 12})
    dst = Path(root) / "sandbox" / _CACHE["ep"].name
    if not dst.exists():
        shutil.copytree(_CACHE["ep"], dst)
    return read_episode(dst)


def key_sets(ep: Episode) -> list[set[str]]:
    return [set(ep.action_space.from_multihot(r)) for r in ep.keyboard()]


# --------------------------------------------------------------------------------------------------------
# generic CSV


def generic_table(ep: Episode, convention: str):
    """``(table, mapping)`` of the episode in one of the generic conventions (see the test)."""
    import pandas as pd

    n = len(ep)
    keys = key_sets(ep)
    mouse = ep.mouse()
    if convention == "degrees":
        df = pd.DataFrame({k: [int(k in s) for s in keys] for k in ("w", "s", "a", "d", "shift")})
        df["dpitch"], df["dyaw"] = mouse[:, 0], mouse[:, 1]
        return df, {"keys": ["w", "s", "a", "d", "shift"], "d_pitch": "dpitch", "d_yaw": "dyaw"}
    if convention == "radians-left-down-offset":  # yaw counter-clockwise, pitch down +, log 2 rows early
        lead = 2
        df = pd.DataFrame({
            "pressed": [""] * lead + ["+".join(sorted(s)) for s in keys],
            "turn": np.r_[np.zeros(lead), -np.radians(mouse[:, 1])],
            "look": np.r_[np.zeros(lead), -np.radians(mouse[:, 0])],
        })
        return df, {"keys_column": "pressed", "d_yaw": "turn", "d_pitch": "look", "mouse_units": "rad",
                    "yaw_positive": "left", "pitch_positive": "down", "row_offset": lead}
    if convention == "absolute-json-ms":  # absolute wrapped angles, JSON key lists, a time column in ms
        yaw = (np.cumsum(mouse[:, 1]) + 180.0) % 360.0 - 180.0
        pitch = np.cumsum(mouse[:, 0])
        df = pd.DataFrame({"ms": np.arange(n) * 1000.0 / FPS + 250.0, "keys": [json.dumps(sorted(s)) for s in keys],
                           "heading": yaw, "elevation": pitch})
        return df, {"time": "ms", "time_scale_s": 0.001, "time_offset_s": 0.25, "keys_column": "keys",
                    "yaw": "heading", "pitch": "elevation"}
    if convention == "counts-bitmask":  # mouse counts (Source engine's 0.022 degrees per count), a key bitmask
        bits = ["w", "s", "a", "d", "jump", "shift"]
        mask = [sum(1 << b for b, k in enumerate(bits) if k in s) for s in keys]
        df = pd.DataFrame({"buttons": mask, "mx": mouse[:, 1] / 0.022, "my": -mouse[:, 0] / 0.022})
        return df, {"keys_bitmask": "buttons", "bits": bits, "key_names": {"jump": "space"}, "mouse_dx": "mx",
                    "mouse_dy": "my", "deg_per_count": 0.022}
    raise ValueError(convention)


# --------------------------------------------------------------------------------------------------------
# VPT JSON lines


MC_KEYS = {"w": "key.keyboard.w", "s": "key.keyboard.s", "a": "key.keyboard.a", "d": "key.keyboard.d",
           "space": "key.keyboard.space", "shift": "key.keyboard.left.shift", "ctrl": "key.keyboard.left.control"}


def write_vpt(ep: Episode, folder: Path, name: str, gui: tuple[int, int] | None = None, scale_deg: float = 0.15,
              extra_key_frames: range = range(0)) -> Path:
    """The episode as a VPT recording ``<name>.mp4`` + ``<name>.jsonl`` (one tick per frame); ``gui``: frames
    whose tick has a GUI open; the E key held on ``extra_key_frames``. Returns the jsonl."""
    from capture.frames import world_to_unreal
    from capture.rotations import quat_to_rotator
    from curation.vpt import MINECRAFT_FRAME

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ep.video_path, folder / f"{name}.mp4")
    keys, mouse, pose = key_sets(ep), ep.mouse(), ep.poses()
    blocks = (pose[:, :3] - [0.0, 0.0, 162.0]) / 100.0 @ world_to_unreal(MINECRAFT_FRAME)  # W^T: Unreal -> Minecraft
    rot = np.array([quat_to_rotator(q) for q in pose[:, 3:]])
    yaw, pitch = np.degrees(np.unwrap(np.radians(rot[:, 1]))), -rot[:, 0]  # Minecraft: yaw as Unreal's, pitch down +
    lines = []
    for i in range(len(ep)):
        held = [MC_KEYS[k] for k in sorted(keys[i]) if k in MC_KEYS] + (["key.keyboard.e"] if i in extra_key_frames else [])
        buttons = [b for b, k in ((0, "lmb"), (1, "rmb")) if k in keys[i]]
        lines.append(json.dumps({
            "mouse": {"x": 320.0, "y": 180.0, "dx": mouse[i, 1] / scale_deg, "dy": -mouse[i, 0] / scale_deg,
                      "scaledX": 0.0, "scaledY": 0.0, "dwheel": 0.0, "buttons": buttons, "newButtons": []},
            "keyboard": {"keys": held, "newKeys": [], "chars": ""},
            "isGuiOpen": bool(gui and gui[0] <= i <= gui[1]), "isGuiInventory": bool(gui and gui[0] <= i <= gui[1]),
            "hotbar": 0, "yaw": float(yaw[i]), "pitch": float(pitch[i]), "xpos": float(blocks[i, 0]),
            "ypos": float(blocks[i, 1]), "zpos": float(blocks[i, 2]), "tick": 1000 + i, "milli": 1650533201000 + 50 * i,
        }))
    path = folder / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------------------------------------
# Sekai camera files


def write_sekai(ep: Episode, folder: Path, name: str, frame, scale_cm: float = 2000.0) -> Path:
    """The episode's camera path as Sekai files ``<name>.mp4`` + ``<name>.npz`` (c2w extrinsics in the world
    ``frame``, a :class:`capture.frames.WorldFrame`; translations in units of ``scale_cm``)."""
    from capture.frames import camera_to_body, world_to_unreal
    from capture.rotations import quat_to_matrix

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ep.video_path, folder / f"{name}.mp4")
    pose = ep.poses()
    w, c = world_to_unreal(frame), camera_to_body(frame.camera_axes)
    r_ue = quat_to_matrix(pose[:, 3:])
    ext = np.tile(np.eye(4), (len(pose), 1, 1))
    ext[:, :3, :3] = w.T @ r_ue @ c.T  # W and C are orthogonal: their inverses are their transposes
    ext[:, :3, 3] = (pose[:, :3] - pose[0, :3]) / scale_cm @ w  # rows: W^T p
    np.savez(folder / f"{name}.npz", extrinsic=ext)
    return folder / f"{name}.npz"


# --------------------------------------------------------------------------------------------------------
# Unreal export CSV


UE_NAMES = {"w": "W", "s": "S", "a": "A", "d": "D", "space": "SpaceBar", "shift": "LeftShift", "ctrl": "LeftControl",
            "lmb": "LeftMouseButton", "rmb": "RightMouseButton"}


def write_unreal(ep: Episode, folder: Path, name: str) -> Path:
    """The episode as an in-engine Unreal recording ``<name>.mp4`` + ``<name>.csv`` (unreal_bridge/UE_EXPORT.md):
    the camera rotator as the engine reports it, yaw in [0, 360)."""
    import pandas as pd

    from capture.rotations import quat_to_rotator

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ep.video_path, folder / f"{name}.mp4")
    pose = ep.poses()
    rot = np.array([quat_to_rotator(q) for q in pose[:, 3:]])
    keys = key_sets(ep)
    pd.DataFrame({
        "frame": np.arange(len(ep)) + 100, "time_s": ep.times() + 12.5, "keys": ["|".join(UE_NAMES[k] for k in sorted(s)) for s in keys],
        "x_cm": pose[:, 0], "y_cm": pose[:, 1], "z_cm": pose[:, 2], "pitch_deg": rot[:, 0], "yaw_deg": rot[:, 1] % 360.0,
        "roll_deg": rot[:, 2], "collision": ep.actions["collision"].to_numpy(),
    }).to_csv(folder / f"{name}.csv", index=False, float_format="%.17g")
    return folder / f"{name}.csv"
