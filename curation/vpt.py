"""OpenAI's VPT Minecraft contractor recordings as playmill episodes (``playmill import vpt DIR``).

The VPT contractor data (openai/Video-Pre-Training, the largest public keyboard-and-mouse-annotated gameplay
corpus) is one ``<name>.mp4`` (640x360, 20 fps) and one ``<name>.jsonl`` per recording: one JSON object per game
tick, fields as the published loader (``data_loader.py``, ``run_inverse_dynamics_model.py``) reads them:

* ``keyboard.keys``: the Minecraft key names held this tick (``key.keyboard.w``, ``key.keyboard.left.shift``, ...);
* ``mouse.dx``/``mouse.dy``: mouse counts this tick (y grows downwards), ``mouse.buttons`` held buttons (0 attack,
  1 use, 2 pick item), ``mouse.newButtons`` those pressed this tick, ``mouse.x``/``mouse.y`` the cursor;
* ``isGuiOpen`` (an inventory, crafting table, chest or menu screen: the mouse moves a cursor, not the camera),
  ``hotbar`` (selected slot 0-8), ``tick``, ``milli`` (wall clock, ms), and where recorded the player's ``yaw``,
  ``pitch`` (degrees, Minecraft's signs) and ``xpos``/``ypos``/``zpos`` (blocks).

What the import does (settings: :class:`VPTImportConfig`, ``imports.vpt``):

Keys
    Minecraft key names map onto the action space by ``keys`` (physical keys: W/A/S/D, space, left shift, left
    control; in Minecraft shift sneaks and control sprints) and ``mouse_buttons`` (attack -> lmb, use -> rmb).
    Every other key or button pressed in the recording is kept as an extra column, ``vpt_key_<name>`` (e.g.
    ``vpt_key_e`` for the inventory key, ``vpt_key_1`` for a hotbar key) or ``vpt_mouse_<n>``, 0/1 per frame;
    ``vpt_hotbar`` is the selected slot and ``vpt_tick`` the recording's tick of each frame. ``fix_stuck_attack``
    applies the published loader's workaround (a recording that starts with attack "newly pressed" has it stuck
    down until the player really presses it).

Mouse
    Counts become degrees with Minecraft's camera sensitivity: ``deg_per_count = 0.15 * (0.6 s + 0.2)^3 * 8`` for
    the options.txt ``mouseSensitivity`` ``s`` (0.5, the default "100%", gives 0.15 = 360/2400, the loader's
    ``CAMERA_SCALER``); ``deg_per_count`` overrides it. ``d_yaw = dx * k``, ``d_pitch = -dy * k`` (moving the
    mouse up looks up). Raw counts are kept in ``mouse_dx``/``mouse_dy``. Where the recording has the player's yaw,
    the import compares it with the counts and names the sensitivity that the player really used when they
    disagree.

Time
    Ticks are events on the capture timeline (:class:`capture.timeline.InputTimeline`) at ``clock`` time (``tick``:
    tick number / ``tick_rate_hz``; ``milli``: the wall clock; ``line``: line number / fps), moved by
    ``time_offset_s``, and each goes to the video frame nearest in time (the frame boundaries are half a frame after
    the frame times): with one tick per frame, line ``k`` describes frame ``k``, as the published loader pairs them.
    A key held for ticks ``r..m`` is held in the frames of those ticks; mouse counts of several ticks in one frame
    are summed. Frames without a tick at either end are not imported.

GUI spans
    Frames while a GUI is open are not gameplay: each such span is quarantined with its reason
    (``<episodes_dir>/../rejects/vpt-<dir>.jsonl``) and cuts the recording; each gameplay span of at least
    ``min_frames`` frames is an episode ``vpt-<recording>-s0000000000-i<span number>`` (shorter ones are
    quarantined too). A recording that cannot be read (no JSON lines, a broken line, no video) is quarantined whole.

Pose
    ``xpos/ypos/zpos`` (blocks, 1 block = 100 cm, eye ``eye_height_cm`` above the feet) in Minecraft's world
    (right-handed, +y up, yaw 0 facing +z, yaw growing clockwise seen from above, pitch positive looking down)
    become Unreal's frame with +z (south) as +X: ``X = z``, ``Y = -x``, ``Z = y``, Unreal yaw = Minecraft yaw,
    Unreal pitch = -Minecraft pitch. Without recorded angles the orientation integrates the mouse.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
from pydantic import model_validator

from capture.actions import DEFAULT_KEYS, ActionSpace
from capture.frames import WorldFrame
from capture.imports import ImportResult
from capture.settings import Field, InputError, Invalid, settings
from capture.video import X264Preset
from curation.importers import ActionKeys, CheckMode, Track, velocity_and_speed

__all__ = ["VPTImportConfig", "VPTRecording", "read_jsonl", "deg_per_count", "sensitivity_for", "vpt_arrays",
           "import_vpt", "check_vpt", "MINECRAFT_KEYS", "MINECRAFT_FRAME"]

#: Minecraft key names (as the recorder writes them) -> playmill action keys (physical keys).
MINECRAFT_KEYS: dict[str, str] = {
    "key.keyboard.w": "w", "key.keyboard.s": "s", "key.keyboard.a": "a", "key.keyboard.d": "d",
    "key.keyboard.space": "space", "key.keyboard.left.shift": "shift", "key.keyboard.left.control": "ctrl",
}
#: Minecraft's world: right-handed, +y up; +z (south: where yaw 0 faces) becomes Unreal +X.
MINECRAFT_FRAME = WorldFrame(up="+y", handedness="right", forward="+z")
_GUI = "x_gui"
SOURCE_FRAME = ("minecraft: right-handed, +y up, blocks, yaw 0 facing +z growing clockwise, pitch + looking down; "
                "to Unreal: X = z, Y = -x, Z = y, x100 cm, yaw = yaw, pitch = -pitch")


def deg_per_count(sensitivity: float) -> float:
    """Degrees of camera turn per mouse count at Minecraft's ``mouseSensitivity`` option ``s`` (0-1):
    ``0.15 * (0.6 s + 0.2)^3 * 8`` (the client's mouse handler; 0.5 gives 0.15 = 360/2400)."""
    return 0.15 * (0.6 * float(sensitivity) + 0.2) ** 3 * 8.0


def sensitivity_for(deg_per_count_value: float) -> float:
    """The ``mouseSensitivity`` whose :func:`deg_per_count` is ``deg_per_count_value`` (inverse)."""
    return ((float(deg_per_count_value) / 1.2) ** (1.0 / 3.0) - 0.2) / 0.6


@settings
class VPTImportConfig:
    """``playmill import vpt`` settings (``imports.vpt``; module doc)."""

    keys: dict[str, str] = Field(default_factory=lambda: dict(MINECRAFT_KEYS), description="Minecraft key name -> action key; other keys become vpt_key_<name> extras")
    mouse_buttons: dict[int, str] = Field(default_factory=lambda: {0: "lmb", 1: "rmb"}, description="mouse button (0 attack, 1 use, 2 pick) -> action key; others become vpt_mouse_<n> extras")
    action_keys: ActionKeys = Field(DEFAULT_KEYS, description="the action space written")
    sensitivity: float = Field(0.5, ge=0, le=1, description="the player's Minecraft mouseSensitivity (0.5 = the default '100%': 0.15 degrees per count)")
    deg_per_count: float | None = Field(None, gt=0, description="degrees per mouse count (null: from sensitivity)")
    clock: Literal["tick", "milli", "line"] = Field("tick", description="tick time: tick number / tick_rate_hz, the milli wall clock, or line number / fps")
    tick_rate_hz: float = Field(20.0, gt=0, description="game ticks per second (Minecraft: 20)")
    time_offset_s: float = Field(0.0, description="the log time of video frame 0, seconds (> 0: the log starts earlier than the video)")
    fps: float | None = Field(None, gt=0, le=240, description="video frame rate (null: the video's; VPT: 20)")
    min_frames: int = Field(20, ge=1, description="gameplay spans shorter than this are quarantined, frames")
    fix_stuck_attack: bool = Field(True, description="drop an attack button stuck down from the first tick until really pressed (the published loader's workaround)")
    vertical_fov_deg: float = Field(70.0, gt=1, lt=179, description="Minecraft's FOV option (vertical, degrees); meta.json records the horizontal one")
    eye_height_cm: float = Field(162.0, ge=0, description="camera height above the recorded feet position, cm")
    crf: int = Field(18, ge=0, le=51, description="x264 quality of the re-encoded video")
    preset: X264Preset = Field("veryfast", description="x264 preset of the re-encoded video")
    check: CheckMode = Field("warn", description="label diagnosis: off, warn (print the fix) or refuse (quarantine the recording)")

    @model_validator(mode="after")
    def _keys_in_space(self) -> "VPTImportConfig":
        for where, mapping in (("keys", self.keys), ("mouse_buttons", self.mouse_buttons)):
            for name, key in mapping.items():
                if key not in self.action_keys:
                    raise Invalid(f"{where}.{name}", key, f"a key of action_keys ({', '.join(self.action_keys)})")
        return self

    @property
    def space(self) -> ActionSpace:
        return ActionSpace(tuple(self.action_keys))

    @property
    def scale_deg(self) -> float:
        """Degrees per mouse count in use."""
        return float(self.deg_per_count) if self.deg_per_count is not None else deg_per_count(self.sensitivity)


# --------------------------------------------------------------------------------------------------------
# reading


@dataclass
class VPTRecording:
    """One recording: ``name`` (its file name without extension), ``video``, ``jsonl``."""

    name: str
    video: Path
    jsonl: Path


def find_recordings(src: str | os.PathLike) -> tuple[list[VPTRecording], list[tuple[str, str]]]:
    """``(recordings, unpaired)``: every ``<name>.mp4`` with its ``<name>.jsonl`` under ``src`` (recursively), and
    ``(file, reason)`` for each file that lacks its partner."""
    root = Path(src)
    if root.is_file():
        root = root.parent
    if not root.is_dir():
        raise InputError(f"{src}: no such folder (VPT recordings are <name>.mp4 + <name>.jsonl)")
    files: dict[str, dict[str, Path]] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in (".mp4", ".jsonl") and not any(s.startswith(".") for s in p.relative_to(root).parts):
            files.setdefault(str(p.with_suffix("")), {})[p.suffix.lower()] = p
    recs, unpaired = [], []
    for stem, f in sorted(files.items()):
        if ".mp4" in f and ".jsonl" in f:
            recs.append(VPTRecording(Path(stem).name, f[".mp4"], f[".jsonl"]))
        else:
            have, miss = (".mp4", ".jsonl") if ".mp4" in f else (".jsonl", ".mp4")
            unpaired.append((f[have].name, f"no {Path(stem).name}{miss} beside it"))
    return recs, unpaired


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The ticks of a recording; InputError naming the file and line for anything unreadable."""
    ticks = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read: {e}") from None
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise InputError(f"{path}:{i}: not a JSON object: {e}") from None
        if not isinstance(obj, dict):
            raise InputError(f"{path}:{i}: not a JSON object: {line[:80]!r}")
        ticks.append(obj)
    if not ticks:
        raise InputError(f"{path}: no ticks (expected one JSON object per line)")
    return ticks


def _num(v: Any, where: str, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise InputError(f"{where}: {what} is {v!r}, not a number")
    return float(v)


def extra_name(key: str) -> str:
    """The extra column (without the ``vpt_`` prefix) of a Minecraft key name: ``key.keyboard.e`` -> ``key_e``."""
    short = key[len("key.keyboard."):] if key.startswith("key.keyboard.") else key
    return "key_" + (re.sub(r"[^a-z0-9]+", "_", short.lower()).strip("_") or "unknown")


@dataclass
class TickTable:
    """Per-tick values of a recording (T ticks). ``t`` video seconds; ``held`` {action key or pseudo key: bool[T]};
    ``dx``/``dy`` counts; ``gui`` bool[T]; ``inventory`` bool[T] (the GUI is the inventory, where recorded);
    ``hotbar`` [T]; ``tick`` [T]; ``yaw``/``pitch`` [T] Minecraft degrees or None; ``pos`` [T, 3] blocks or None;
    ``null_inputs`` ticks whose mouse or keyboard was recorded as null."""

    t: np.ndarray
    held: dict[str, np.ndarray]
    dx: np.ndarray
    dy: np.ndarray
    gui: np.ndarray
    inventory: np.ndarray
    hotbar: np.ndarray
    tick: np.ndarray
    yaw: np.ndarray | None
    pitch: np.ndarray | None
    pos: np.ndarray | None
    null_inputs: int = 0
    extras: list[str] = field(default_factory=list)


def tick_table(ticks: list[dict[str, Any]], cfg: VPTImportConfig, fps: float, where: str) -> TickTable:
    """Parse the ticks (module doc): keys onto the action space or extras, counts, GUI state, clock times."""
    n = len(ticks)
    space = cfg.space
    held: dict[str, np.ndarray] = {}
    dx, dy = np.zeros(n), np.zeros(n)
    gui, inv = np.zeros(n, bool), np.zeros(n, bool)
    hotbar, tick_no, milli = np.zeros(n), np.zeros(n), np.zeros(n)
    yaw = np.full(n, np.nan)
    pitch = np.full(n, np.nan)
    pos = np.full((n, 3), np.nan)
    nulls = 0
    stuck = cfg.fix_stuck_attack
    for i, tk in enumerate(ticks):
        w = f"{where}:{i + 1}"
        mouse = tk.get("mouse") or {}
        kb = tk.get("keyboard") or {}
        if tk.get("mouse") is None or tk.get("keyboard") is None:
            nulls += 1
        if not isinstance(mouse, dict) or not isinstance(kb, dict):
            raise InputError(f"{w}: mouse and keyboard must be objects")
        buttons = list(mouse.get("buttons") or [])
        if stuck:  # the published loader: attack "newly pressed" on the first tick is stuck until pressed again
            if i == 0:
                stuck = list(mouse.get("newButtons") or []) == [0]
            elif 0 in (mouse.get("newButtons") or []):
                stuck = False
            if stuck:
                buttons = [b for b in buttons if b != 0]
        names = [cfg.keys.get(str(k), None) or f"x_{extra_name(str(k))}" for k in (kb.get("keys") or [])]
        names += [cfg.mouse_buttons.get(int(b)) or f"x_mouse_{int(b)}" for b in buttons
                  if isinstance(b, (int, float)) and not isinstance(b, bool)]
        for name in names:
            if not name.startswith("x_"):
                space.index(name)  # the config's key map names a key outside the action space
            held.setdefault(name, np.zeros(n, bool))[i] = True
        dx[i] = _num(mouse.get("dx", 0.0), w, "mouse.dx")
        dy[i] = _num(mouse.get("dy", 0.0), w, "mouse.dy")
        gui[i] = bool(tk.get("isGuiOpen", False))
        inv[i] = bool(tk.get("isGuiInventory", False))
        hotbar[i] = _num(tk.get("hotbar", 0), w, "hotbar")
        if cfg.clock == "tick":
            tick_no[i] = _num(tk.get("tick", i), w, "tick")
        if cfg.clock == "milli":
            milli[i] = _num(tk.get("milli"), w, "milli")
        if "yaw" in tk and "pitch" in tk:
            yaw[i], pitch[i] = _num(tk["yaw"], w, "yaw"), _num(tk["pitch"], w, "pitch")
        if all(k in tk for k in ("xpos", "ypos", "zpos")):
            pos[i] = [_num(tk[k], w, k) for k in ("xpos", "ypos", "zpos")]
    if cfg.clock == "tick":
        t = (tick_no - tick_no[0]) / cfg.tick_rate_hz
    elif cfg.clock == "milli":
        t = (milli - milli[0]) / 1000.0
    else:
        t = np.arange(n) / fps
    t = t - cfg.time_offset_s
    bad = np.flatnonzero(np.diff(t) <= 0)
    if bad.size:
        raise InputError(f"{where}:{int(bad[0]) + 2}: the {cfg.clock} clock does not increase (line "
                         f"{int(bad[0]) + 1} -> {int(bad[0]) + 2}); set imports.vpt.clock to another clock (line: one "
                         "tick per video frame)")
    tick_no = tick_no if cfg.clock == "tick" else np.arange(n, dtype=float)
    return TickTable(t, held, dx, dy, gui, inv, hotbar, tick_no,
                     None if np.isnan(yaw).any() else yaw, None if np.isnan(pitch).any() else pitch,
                     None if np.isnan(pos).any() else pos, nulls,
                     sorted(k[2:] for k in held if k.startswith("x_")))


# --------------------------------------------------------------------------------------------------------
# ticks -> frames


@dataclass
class VPTArrays(Track):
    """The :class:`curation.importers.Track` of a recording's video frames ``first .. first + n - 1`` (the frames
    ticks describe; ``keys`` bool [n, K], the extra keys and the hotbar in ``extras``), and ``gui``/``inventory``
    bool [n]: a GUI screen (the inventory) was open."""

    first: int = 0
    gui: np.ndarray | None = None
    inventory: np.ndarray | None = None


def vpt_arrays(tt: TickTable, cfg: VPTImportConfig, n_frames: int, fps: float, where: str) -> VPTArrays:
    """Align the ticks to the video's frames with the capture timeline (module doc) and complete the pose (pure)."""
    from capture.frames import world_to_unreal
    from capture.rotations import rotator_to_quat
    from capture.timeline import InputTimeline

    half = 0.5 / fps
    frame_t = np.arange(n_frames) / fps
    inside = np.flatnonzero((frame_t + half > tt.t[0]) & (frame_t - half <= tt.t[-1]))
    if not len(inside):
        raise InputError(f"{where}: the ticks ({tt.t[0]:.2f} .. {tt.t[-1]:.2f} s) describe no video frame (0 .. "
                         f"{frame_t[-1]:.2f} s); check imports.vpt.clock and time_offset_s")
    first, n = int(inside[0]), len(inside)
    ft = frame_t[first:first + n]
    space = cfg.space
    pseudo = sorted(set(tt.held) - set(space.keys)) + [_GUI, "x_inventory"]
    tl_space = ActionSpace(space.keys + tuple(pseudo))
    k = cfg.scale_deg
    tl = InputTimeline(tl_space, deg_per_count=k)
    held = {**tt.held, _GUI: tt.gui, "x_inventory": tt.inventory}
    for name, h in held.items():
        d = np.diff(np.r_[0, h.astype(np.int8), 0])
        for s, e in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1):
            tl.key_down(name, tt.t[s] * 1000.0)
            tl.key_up(name, tt.t[e] * 1000.0)
    for i in range(len(tt.t)):
        tl.mouse_move(tt.t[i] * 1000.0, dx=float(tt.dx[i]), dy=float(tt.dy[i]))
    fi = tl.align(ft + half)  # each tick goes to the frame nearest in time
    kb = fi.keyboard.astype(bool)
    keys = kb[:, :len(space)]
    col = {name: kb[:, len(space) + j] for j, name in enumerate(pseudo)}
    mouse = np.column_stack([fi.d_pitch_deg, fi.d_yaw_deg])
    raw = np.column_stack([np.nan_to_num(fi.mouse_dx), np.nan_to_num(fi.mouse_dy)])
    near = np.clip(np.searchsorted(tt.t, ft, side="left"), 0, len(tt.t) - 1)  # the tick at or after each frame
    prev = np.clip(near - 1, 0, len(tt.t) - 1)
    near = np.where(np.abs(tt.t[prev] - ft) < np.abs(tt.t[near] - ft), prev, near)
    extras = {name[2:]: col[name].astype(float) for name in pseudo if name not in (_GUI, "x_inventory")}
    extras["hotbar"] = tt.hotbar[near]
    extras["tick"] = tt.tick[near]
    if tt.yaw is not None:
        yaw_u = np.degrees(np.unwrap(np.radians(tt.yaw)))
        yaw = np.interp(ft, tt.t, yaw_u)
        pitch = -np.interp(ft, tt.t, tt.pitch)
    else:
        yaw = np.cumsum(mouse[:, 1]) - mouse[0, 1]
        pitch = np.cumsum(mouse[:, 0]) - mouse[0, 0]
    quat = rotator_to_quat(pitch, yaw, 0.0)
    pos = np.zeros((n, 3))
    if tt.pos is not None:
        blocks = np.stack([np.interp(ft, tt.t, tt.pos[:, j]) for j in range(3)], axis=1)
        pos = blocks @ world_to_unreal(MINECRAFT_FRAME).T * 100.0
        pos[:, 2] += cfg.eye_height_cm
    vel, speed = velocity_and_speed(pos, yaw, fps)
    return VPTArrays(keys, mouse, pos, quat, pitch, yaw, vel, speed, raw, None, extras, first=first, gui=col[_GUI],
                     inventory=col["x_inventory"])


def sensitivity_check(tt: TickTable, cfg: VPTImportConfig) -> str | None:
    """A warning when the recorded yaw turns by a different amount than the counts times :attr:`scale_deg`
    (the player's sensitivity is not the configured one), naming the sensitivity that fits; None otherwise."""
    if tt.yaw is None or len(tt.yaw) < 3:
        return None
    dyaw = (np.diff(tt.yaw) + 180.0) % 360.0 - 180.0
    counts = tt.dx[1:]
    ok = ~tt.gui[1:] & ~tt.gui[:-1] & (np.abs(counts) > 0)
    if ok.sum() < 20:
        return None
    x, y = counts[ok], dyaw[ok]
    per_count = float(x @ y / (x @ x))
    if per_count <= 0:
        return (f"the recorded yaw turns against the mouse counts (slope {per_count:.3g} degrees per count): the "
                "ticks' mouse and yaw do not belong together")
    if abs(per_count / cfg.scale_deg - 1.0) <= 0.05:
        return None
    return (f"the recorded yaw turns {per_count:.4g} degrees per mouse count, not {cfg.scale_deg:.4g}: the player's "
            f"sensitivity was {sensitivity_for(per_count):.3f} (set imports.vpt.sensitivity: "
            f"{sensitivity_for(per_count):.3f}, or deg_per_count: {per_count:.4g})")


# --------------------------------------------------------------------------------------------------------
# importing


@dataclass
class Span:
    """A run of frames ``start..end`` (indices into :class:`VPTArrays`), gameplay (``gui`` False) or not."""

    start: int
    end: int
    gui: bool
    number: int


def spans(arr: VPTArrays) -> list[Span]:
    """The recording cut at GUI changes, numbered in order (the episode index of a gameplay span)."""
    out: list[Span] = []
    s = 0
    g = arr.gui
    for i in range(1, len(g) + 1):
        if i == len(g) or g[i] != g[s]:
            out.append(Span(s, i - 1, bool(g[s]), len(out)))
            s = i
    return out


def _load(rec: VPTRecording, cfg: VPTImportConfig) -> tuple[TickTable, VPTArrays, float, Any]:
    """``(ticks, per-frame arrays, fps, video info)`` of a recording; InputError / VideoError naming the file."""
    from capture.video import probe_video

    ticks = read_jsonl(rec.jsonl)
    info = probe_video(rec.video)
    fps = float(cfg.fps or info.fps)
    tt = tick_table(ticks, cfg, fps, str(rec.jsonl))
    return tt, vpt_arrays(tt, cfg, info.frame_count, fps, str(rec.jsonl)), fps, info


def _hfov(cfg: VPTImportConfig, width: int, height: int) -> float:
    return float(np.degrees(2 * np.arctan(np.tan(np.radians(cfg.vertical_fov_deg) / 2) * width / height)))


def _check_item(rec: VPTRecording, arr: VPTArrays, cfg: VPTImportConfig, fps: float, hfov: float):
    from curation.import_check import CheckItem

    ok = ~arr.gui
    return CheckItem(rec.name, rec.video, cfg.space.keys, arr.keys, arr.mouse, arr.speed, None, fps, first=arr.first,
                     fov_deg=hfov, source="vpt", valid=ok)


def vpt_fixes(diagnosis, cfg: VPTImportConfig, fps: float) -> list[str]:
    """The ``imports.vpt`` changes that fix the faults of a diagnosis (YAML lines)."""
    from curation.import_check import shift_rows

    out = []
    for f in diagnosis.faults:
        if f.code == "shift":
            out.append(f"time_offset_s: {cfg.time_offset_s + shift_rows(diagnosis) / fps:.6g}  # {f.what}")
        elif f.code in ("mouse_scale", "mouse_counts") and diagnosis.scores.slope == diagnosis.scores.slope:
            k = cfg.scale_deg * float(diagnosis.scores.slope)
            out.append(f"sensitivity: {sensitivity_for(k):.3f}  # {f.what} (deg_per_count {k:.4g})")
        else:
            out.append(f"# {f.what}: {f.fix}")
    return out


def import_vpt(src: str | os.PathLike, episodes_dir: str | os.PathLike,
               config: VPTImportConfig | Mapping[str, Any] | None = None) -> ImportResult:
    """Import every VPT recording under ``src`` into ``episodes_dir`` (module doc). Existing episodes are skipped,
    GUI spans and unreadable recordings quarantined with reasons; the sources are only read."""
    from capture.episode import episode_id
    from capture.imports import write_rejects
    from capture.video import VideoError
    from curation.import_check import check_mode_outcome
    from curation.importers import write_episode_arrays

    cfg = config if isinstance(config, VPTImportConfig) else VPTImportConfig.from_dict(config or {})
    out = Path(episodes_dir)
    recs, unpaired = find_recordings(src)
    res = ImportResult(failed=list(unpaired))
    if not recs and not unpaired:
        res.nothing = f"no VPT recording under {src} (<name>.mp4 with <name>.jsonl beside it)"
        return res
    rejects: list[dict[str, Any]] = [{"item": n, "reason": r} for n, r in unpaired]
    created = not out.exists()
    for rec in recs:
        try:
            tt, arr, fps, info = _load(rec, cfg)
        except (InputError, VideoError, KeyError) as e:
            res.failed.append((rec.name, str(e).strip("'\"")))
            rejects.append({"item": rec.name, "reason": str(e)})
            continue
        hfov = _hfov(cfg, info.width - info.width % 2, info.height - info.height % 2)
        warn = sensitivity_check(tt, cfg)
        if warn:
            res.warnings.append(f"{rec.name}: {warn}")
        if tt.null_inputs:
            res.notes.append(f"{rec.name}: {tt.null_inputs} tick(s) had a null mouse or keyboard (read as no input)")
        if cfg.check != "off":
            refused = check_mode_outcome([_check_item(rec, arr, cfg, fps, hfov)], cfg.check,
                                         lambda d, _: vpt_fixes(d, cfg, fps), res)
            if refused:
                rejects.append({"item": rec.name, "reason": res.failed[-1][1]})
                continue
        for sp in spans(arr):
            frames = (arr.first + sp.start, arr.first + sp.end)
            if sp.gui:
                what = "the inventory" if arr.inventory[sp.start:sp.end + 1].any() else "a GUI screen"
                rejects.append({"item": rec.name, "frames": list(frames), "reason": f"{what} is open (inventory, "
                                "crafting, chest or menu: the mouse moves a cursor, not the camera)"})
                continue
            n = sp.end - sp.start + 1
            if n < cfg.min_frames:
                rejects.append({"item": rec.name, "frames": list(frames), "reason": f"gameplay span of {n} frame(s) "
                                f"between GUI screens, shorter than imports.vpt.min_frames {cfg.min_frames}"})
                continue
            eid = episode_id("vpt", rec.name, 0, sp.number)
            if (out / eid / "meta.json").is_file():
                res.skipped.append(eid)
                continue
            config = {"source_video": rec.video.name, "actions_jsonl": rec.jsonl.name, "first_video_frame": frames[0],
                      "fov_deg": hfov, "deg_per_count": cfg.scale_deg, "sensitivity": cfg.sensitivity,
                      "clock": cfg.clock, "time_offset_s": cfg.time_offset_s}
            try:
                if not out.exists():
                    out.mkdir(parents=True)
                path = write_episode_arrays(
                    out, eid, arr.rows(slice(sp.start, sp.end + 1)), source="vpt", scene=rec.name, seed=0, fps=fps,
                    frames=_video_frames(rec.video, frames[0]), action_space=cfg.space, source_frame=SOURCE_FRAME,
                    config=config, crf=cfg.crf, preset=cfg.preset)
            except FileExistsError:
                res.skipped.append(eid)
                continue
            except (InputError, VideoError, ValueError) as e:
                res.failed.append((f"{rec.name} frames {frames[0]}-{frames[1]}", str(e)))
                rejects.append({"item": rec.name, "frames": list(frames), "reason": str(e)})
                continue
            res.add_written(path)
        gui_frames = int(arr.gui.sum())
        if gui_frames:
            res.notes.append(f"{rec.name}: {gui_frames} GUI frame(s) of {len(arr)} quarantined")
    if rejects:
        res.rejects_path = write_rejects(out, "vpt", Path(src).resolve().name, rejects)
    if created and out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    return res


def _video_frames(video: Path, first: int):
    from capture.video import iter_frames

    for i, (_, f) in enumerate(iter_frames(video)):
        if i >= first:
            yield f


def check_vpt(src: str | os.PathLike, config: VPTImportConfig | Mapping[str, Any] | None = None):
    """The label diagnosis of the recordings under ``src`` without writing anything: a
    :class:`curation.import_check.CheckReport` with the ``imports.vpt`` changes that fix each fault."""
    from capture.video import VideoError
    from curation.import_check import check_items

    cfg = config if isinstance(config, VPTImportConfig) else VPTImportConfig.from_dict(config or {})
    recs, failed = find_recordings(src)
    items, fps = [], 20.0
    for rec in recs:
        try:
            _, arr, fps, info = _load(rec, cfg)
        except (InputError, VideoError) as e:
            failed.append((rec.name, str(e)))
            continue
        items.append(_check_item(rec, arr, cfg, fps, _hfov(cfg, info.width, info.height)))
    report = check_items(items)
    report.failed += failed
    if report.diagnosis is not None:
        report.fixes = vpt_fixes(report.diagnosis, cfg, fps)
    return report
