"""SandboxWorld: the built-in Panda3D level as a :class:`capture.world.World`.

A procedural level (city, indoor or park) from the seed given to :meth:`SandboxWorld.reset`, a kinematic
first-person agent driven by frame actions, NPCs and vehicles moving by deterministic rules, rendered
offscreen in software. Everything the world reports is in the canonical Unreal frame (cm, float64); Panda3D's
frame is used for rendering only.

Determinism: given ``(seed, actions)`` the poses, velocities, collisions and actor motion are identical in any
fresh world (no wall clock, no unseeded randomness); frames are identical on the same machine.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from capture.actions import ActionSpace, FrameAction
from capture.world import Observation

from .actors import Movers, spawn_npcs, spawn_vehicles
from .agent import AgentParams, AgentState, spawn_agent, step_agent
from .atmosphere import WEATHERS, atmosphere
from .frames import PANDA_SOURCE_FRAME
from .layout import SCENES, Layout, build_layout
from .walkable import WALKABLE_SCHEMA, WalkableGrid

AGENT_KEYS: frozenset[str] = frozenset({"w", "s", "a", "d", "space", "shift", "ctrl"})
DENSITY_RANGE = (0.0, 2.0)
FOV_RANGE_DEG = (20.0, 150.0)
SIZE_RANGE_PX = (16, 4096)
FPS_RANGE = (1.0, 240.0)


def _check_number(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"SandboxWorld: {name}={value!r} must be a number in [{lo}, {hi}]")
    v = float(value)
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"SandboxWorld: {name}={value!r} is out of range; allowed: [{lo}, {hi}]")
    return v


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= int(value) <= hi:
        raise ValueError(f"SandboxWorld: {name}={value!r} must be an integer in [{lo}, {hi}]")
    return int(value)


class SandboxWorld:
    """The built-in sandbox level (see the module docstring); implements :class:`capture.world.World`.

    Parameters: ``scene`` one of ``"city"``, ``"indoor"``, ``"park"``; ``width``/``height`` in pixels;
    ``fps`` frames per second (the fixed simulation step is ``1 / fps``); ``weather`` one of ``"clear"``,
    ``"overcast"``, ``"fog"``, ``"rain"``; ``time_of_day`` hours in [0, 24]; ``npc_density`` and
    ``vehicle_density`` in [0, 2] (1.0 is a busy level; the city is the only scene with vehicles);
    ``fov_deg`` horizontal field of view; ``action_space`` the key list of the actions (keys the agent does
    not use, such as mouse buttons, are accepted and ignored).
    """

    source = "sandbox"
    source_frame = PANDA_SOURCE_FRAME

    def __init__(self, scene: str = "city", width: int = 640, height: int = 352, fps: float = 25.0,
                 weather: str = "clear", time_of_day: float = 12.0, npc_density: float = 0.5,
                 vehicle_density: float = 0.5, fov_deg: float = 90.0, action_space: ActionSpace | None = None,
                 agent_params: AgentParams | None = None) -> None:
        if scene not in SCENES:
            raise ValueError(f"SandboxWorld: scene={scene!r} is not supported; allowed: {list(SCENES)}")
        if weather not in WEATHERS:
            raise ValueError(f"SandboxWorld: weather={weather!r} is not supported; allowed: {list(WEATHERS)}")
        self.width = _check_int("width", width, *SIZE_RANGE_PX)
        self.height = _check_int("height", height, *SIZE_RANGE_PX)
        self.fps = _check_number("fps", fps, *FPS_RANGE)
        self.time_of_day = _check_number("time_of_day", time_of_day, 0.0, 24.0)
        self.npc_density = _check_number("npc_density", npc_density, *DENSITY_RANGE)
        self.vehicle_density = _check_number("vehicle_density", vehicle_density, *DENSITY_RANGE)
        self.fov_deg = _check_number("fov_deg", fov_deg, *FOV_RANGE_DEG)
        if action_space is None:
            action_space = ActionSpace()
        if not isinstance(action_space, ActionSpace):
            raise ValueError(f"SandboxWorld: action_space must be a capture.actions.ActionSpace, got {type(action_space).__name__}")
        self.scene = scene
        self.weather = weather
        self.action_space = action_space
        self.agent_params = agent_params or AgentParams()
        self.config: dict[str, Any] = {
            "scene": scene, "width": self.width, "height": self.height, "fps": self.fps, "weather": weather,
            "time_of_day": self.time_of_day, "npc_density": self.npc_density, "vehicle_density": self.vehicle_density,
            "fov_deg": self.fov_deg, "agent_radius_cm": self.agent_params.radius_cm,
            "eye_height_cm": self.agent_params.eye_height_cm, "walk_cm_s": self.agent_params.walk_cm_s,
            "sprint_cm_s": self.agent_params.sprint_cm_s,
        }
        self._renderer = None
        self._layout: Layout | None = None
        self._walkable: WalkableGrid | None = None
        self._seed: int | None = None
        self._agent: AgentState | None = None
        self._npcs: Movers | None = None
        self._vehicles: Movers | None = None
        self._frame_index = 0
        self._closed = False

    # ------------------------------------------------------------------ World protocol

    def reset(self, seed: int) -> Observation:
        """Build the level of ``seed`` (reused when the seed is unchanged), spawn everything, return frame 0."""
        self._check_open()
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
            raise ValueError(f"SandboxWorld.reset: seed={seed!r} must be a non-negative integer")
        seed = int(seed)
        if self._layout is None or self._seed != seed:
            self._layout = build_layout(self.scene, seed)
            self._walkable = WalkableGrid.from_shapes(self._layout.static_shapes, self._layout.bounds_cm,
                                                      self._layout.cell_cm, self.agent_params.radius_cm)
        self._seed = seed
        layout = self._layout
        rng = np.random.default_rng([seed, 0x5A4D])
        self._npcs = spawn_npcs(rng, layout.npc_lanes, int(round(self.npc_density * layout.max_npcs)), layout.npc_speed_cm_s)
        self._vehicles = spawn_vehicles(rng, layout.vehicle_lanes, int(round(self.vehicle_density * layout.max_vehicles)),
                                        layout.vehicle_speed_cm_s)
        spawn = self._spawn_point(rng)
        self._agent = spawn_agent(spawn, self._spawn_yaw(rng, spawn), self.agent_params)
        self._frame_index = 0
        self._ensure_renderer()
        self._renderer.build(layout, atmosphere(self.time_of_day, self.weather, indoor=not layout.outdoor),
                             self._npcs, self._vehicles)
        return self._observe(self._agent.eye_cm, collision=False)

    def step(self, action: FrameAction) -> Observation:
        """Apply one frame's action: actors move, then the agent moves against everything; render the frame."""
        self._check_open()
        if self._agent is None:
            raise RuntimeError("SandboxWorld.step called before reset(seed)")
        unknown = set(action.keys) - set(self.action_space.keys)
        if unknown:
            raise ValueError(f"SandboxWorld.step: keys {sorted(unknown)} are not in the action space {list(self.action_space.keys)}")
        dt = 1.0 / self.fps
        prev_eye = self._agent.eye_cm
        feet_xy = self._agent.feet_cm[:2]
        self._npcs.step(dt, feet_xy, self.agent_params.radius_cm)
        self._vehicles.step(dt, feet_xy, self.agent_params.radius_cm)
        obstacles = [self._layout.static_shapes, self._npcs.shapes(), self._vehicles.shapes()]
        self._agent = step_agent(self._agent, frozenset(action.keys) & AGENT_KEYS, action.d_pitch_deg, action.d_yaw_deg,
                                 dt, self.agent_params, obstacles)
        self._frame_index += 1
        return self._observe(prev_eye, collision=self._agent.collision)

    def close(self) -> None:
        """Release the renderer. Idempotent."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._closed = True

    def __enter__(self) -> "SandboxWorld":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ queries for controllers and tools

    @property
    def seed(self) -> int | None:
        return self._seed

    @property
    def frame_index(self) -> int:
        return self._frame_index

    @property
    def layout(self) -> Layout:
        self._check_reset()
        return self._layout

    @property
    def walkable(self) -> WalkableGrid:
        self._check_reset()
        return self._walkable

    @property
    def agent_state(self) -> AgentState:
        """The agent now (feet position, eye height, yaw/pitch accumulators, last collision)."""
        self._check_reset()
        return self._agent

    @property
    def npcs(self) -> Movers:
        self._check_reset()
        return self._npcs

    @property
    def vehicles(self) -> Movers:
        self._check_reset()
        return self._vehicles

    def probe(self, yaw_deg: float, max_dist_cm: float, include_dynamic: bool = False) -> float:
        """Horizontal distance (cm) from the agent's centre along ``yaw_deg`` to the first static obstacle
        (also NPCs and vehicles with ``include_dynamic``), or ``max_dist_cm`` if nothing is closer."""
        return float(self.probe_many(np.array([yaw_deg]), max_dist_cm, include_dynamic)[0])

    def probe_many(self, yaws_deg: np.ndarray, max_dist_cm: float, include_dynamic: bool = False) -> np.ndarray:
        """:meth:`probe` for several directions at once."""
        self._check_reset()
        y = np.radians(np.asarray(yaws_deg, dtype=np.float64).reshape(-1))
        dirs = np.stack([np.cos(y), np.sin(y)], axis=1)
        origin = self._agent.feet_cm[:2]
        dist = self._layout.static_shapes.raycast(origin, dirs, max_dist_cm)
        if include_dynamic:
            dist = np.minimum(dist, self._npcs.shapes().raycast(origin, dirs, max_dist_cm))
            dist = np.minimum(dist, self._vehicles.shapes().raycast(origin, dirs, max_dist_cm))
        return dist

    def walkable_mesh(self) -> tuple[np.ndarray, list[list[int]]]:
        """The walkable area as ``(vertices float64 [N, 3] cm, polygons)``, Unreal frame, at ground height.

        Polygons are convex quads (one per walkable grid cell, obstacles inflated by the agent radius removed)
        listing vertex indices counter-clockwise when looking down from +Z in the (x, y) plane as plotted with
        x to the right and y up; neighbouring polygons share whole edges (no T-junctions)."""
        return self.walkable.mesh()

    def export_walkable(self, path: str | os.PathLike) -> Path:
        """Write the walkable mesh as JSON (schema ``playmill.walkable/1``, see :meth:`walkable_mesh`) atomically."""
        verts, polys = self.walkable_mesh()
        doc = {"schema": WALKABLE_SCHEMA, "frame": "unreal", "units": "cm", "scene": self.scene, "seed": self._seed,
               "cell_cm": self._walkable.cell_cm, "agent_radius_cm": self.agent_params.radius_cm,
               "vertices": verts.tolist(), "polygons": polys}
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, out)
        return out

    def render_frame(self) -> np.ndarray:
        """Render the current state again (e.g. after :meth:`reset` for a preview) as ``uint8[H, W, 3]``."""
        self._check_reset()
        a = self._agent
        return self._renderer.render(a.eye_cm, a.pitch_deg, a.yaw_deg, self._npcs, self._vehicles, self._frame_index / self.fps)

    # ------------------------------------------------------------------ camera and agent control (UnrealCV server)

    def render_view(self, eye_cm: np.ndarray, pitch_deg: float, yaw_deg: float, roll_deg: float = 0.0) -> np.ndarray:
        """The current state seen from an arbitrary camera pose (Unreal frame: ``eye_cm`` float64 [3] cm, rotator in
        degrees), ``uint8[H, W, 3]`` RGB. Nothing moves: the agent, NPCs and vehicles stay where they are."""
        self._check_reset()
        return self._renderer.render(self._pose_arg(eye_cm), float(pitch_deg), float(yaw_deg), self._npcs, self._vehicles,
                                     self._frame_index / self.fps, roll_deg=float(roll_deg))

    def render_depth(self, eye_cm: np.ndarray | None = None, pitch_deg: float | None = None, yaw_deg: float | None = None,
                     roll_deg: float = 0.0) -> np.ndarray:
        """Plane depth (distance along the view axis) in cm, ``float32[H, W]``, from the agent's camera or from the
        given pose; sky pixels get the far clip distance (90000 cm). Resolution: about 6 mm."""
        self._check_reset()
        a = self._agent
        eye = a.eye_cm if eye_cm is None else self._pose_arg(eye_cm)
        pitch = a.pitch_deg if pitch_deg is None else float(pitch_deg)
        yaw = a.yaw_deg if yaw_deg is None else float(yaw_deg)
        return self._renderer.render_depth(eye, pitch, yaw, self._npcs, self._vehicles, self._frame_index / self.fps,
                                           roll_deg=float(roll_deg))

    def set_camera(self, width: int | None = None, height: int | None = None, fov_deg: float | None = None) -> None:
        """Change the render size (pixels) and/or the horizontal field of view (degrees) without touching the level,
        the agent or the actors; the renderer is rebuilt (the next frame has the new size)."""
        self._check_open()
        w = self.width if width is None else _check_int("width", width, *SIZE_RANGE_PX)
        h = self.height if height is None else _check_int("height", height, *SIZE_RANGE_PX)
        fov = self.fov_deg if fov_deg is None else _check_number("fov_deg", fov_deg, *FOV_RANGE_DEG)
        if (w, h, fov) == (self.width, self.height, self.fov_deg):
            return
        self.width, self.height, self.fov_deg = w, h, fov
        self.config.update(width=w, height=h, fov_deg=fov)
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._layout is not None and self._agent is not None:
            self._ensure_renderer()
            self._renderer.build(self._layout, atmosphere(self.time_of_day, self.weather, indoor=not self._layout.outdoor),
                                 self._npcs, self._vehicles)

    def place_agent(self, feet_cm: np.ndarray, yaw_deg: float, pitch_deg: float = 0.0) -> AgentState:
        """Teleport the agent: feet at ``feet_cm`` (x, y in cm; z ignored: the agent stands on the ground), look
        accumulators set exactly (float64; pitch clamped to the agent's limit). Returns the new state."""
        self._check_reset()
        p = self._pose_arg(np.array([feet_cm[0], feet_cm[1], 0.0]))
        lim = self.agent_params.pitch_limit_deg
        self._agent = replace(self._agent, feet_cm=np.array([p[0], p[1], 0.0]), yaw_deg=float(yaw_deg),
                              pitch_deg=min(lim, max(-lim, float(pitch_deg))), vz_cm_s=0.0, on_ground=True,
                              collision=False, blocked_by=frozenset())
        return self._agent

    def dynamic_clearance(self, points_xy_cm: np.ndarray, horizon_s: float = 0.0) -> np.ndarray:
        """Distance (cm, [P]) from each point ``(P, 2)`` to the nearest NPC or vehicle footprint (negative inside,
        +inf when there are none): what a controller needs to keep clear of moving people and cars. With
        ``horizon_s > 0`` also to the footprints moved ahead along their heading at their current speed for
        ``horizon_s`` seconds (the smaller distance counts)."""
        self._check_reset()
        pts = np.asarray(points_xy_cm, dtype=np.float64).reshape(-1, 2)
        out = np.minimum(self._npcs.shapes().signed_distance(pts), self._vehicles.shapes().signed_distance(pts))
        if horizon_s > 0.0:
            for movers in (self._npcs, self._vehicles):
                if len(movers):
                    shapes = movers.shapes()
                    y = np.radians(movers.yaw_deg)
                    ahead = movers.pos_cm + (movers.speed_cm_s * float(horizon_s))[:, None] * np.stack([np.cos(y), np.sin(y)], 1)
                    if len(shapes.circ_c):
                        shapes.circ_c = ahead
                    else:
                        shapes.rect_c = ahead
                    out = np.minimum(out, shapes.signed_distance(pts))
        return out

    @staticmethod
    def _pose_arg(v: np.ndarray) -> np.ndarray:
        p = np.asarray(v, dtype=np.float64).reshape(-1)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            raise ValueError(f"SandboxWorld: a position must be 3 finite numbers (cm), got {v!r}")
        return p

    # ------------------------------------------------------------------ internals

    def _spawn_point(self, rng: np.random.Generator) -> np.ndarray:
        """A seeded walkable point clear of NPCs and vehicles (the first of up to 200 candidates)."""
        clearance = self.agent_params.radius_cm + 60.0
        candidates = self._walkable.sample(rng, 200)
        ok = (self._npcs.shapes().signed_distance(candidates) > clearance) & \
             (self._vehicles.shapes().signed_distance(candidates) > clearance + 200.0)
        return candidates[int(np.argmax(ok))]  # the first clear one (or the first of all if none is)

    def _spawn_yaw(self, rng: np.random.Generator, xy_cm: np.ndarray) -> float:
        """A seeded heading that looks into the open: the most open of eight random directions."""
        yaws = rng.uniform(-180.0, 180.0, 8)
        dirs = np.stack([np.cos(np.radians(yaws)), np.sin(np.radians(yaws))], axis=1)
        return float(yaws[int(np.argmax(self._layout.static_shapes.raycast(xy_cm, dirs, 3000.0)))])

    def _observe(self, prev_eye_cm: np.ndarray, collision: bool) -> Observation:
        a = self._agent
        eye = a.eye_cm
        vel = (eye - prev_eye_cm) * self.fps
        speed = float(vel[0] * math.cos(math.radians(a.yaw_deg)) + vel[1] * math.sin(math.radians(a.yaw_deg)))
        frame = self._renderer.render(eye, a.pitch_deg, a.yaw_deg, self._npcs, self._vehicles, self._frame_index / self.fps)
        return Observation(
            frame=frame, t_s=self._frame_index / self.fps, pos_cm=eye, quat_wxyz=a.quat_wxyz, pitch_deg=float(a.pitch_deg),
            yaw_deg=float(a.yaw_deg), vel_cm_s=vel, speed_cm_s=speed, collision=bool(collision),
            extras={"npc_count": float(len(self._npcs)), "vehicle_count": float(len(self._vehicles)),
                    "on_ground": 1.0 if a.on_ground else 0.0},
        )

    def _ensure_renderer(self) -> None:
        if self._renderer is None:
            from .render import SceneRenderer  # Panda3D is imported only when a world renders

            self._renderer = SceneRenderer(self.width, self.height, self.fov_deg)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("SandboxWorld is closed")

    def _check_reset(self) -> None:
        if self._layout is None or self._agent is None:
            raise RuntimeError("SandboxWorld: call reset(seed) first")
