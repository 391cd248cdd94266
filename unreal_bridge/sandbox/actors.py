"""NPCs and vehicles: movers on closed lanes, stepped by deterministic rules (float64, Unreal frame, cm).

Each mover has a lane (a closed loop), an arc length ``s`` along it, a speed and a cruise speed. Per step of
``dt_s`` seconds, in this order and with no randomness:

1. target speed = cruise speed, limited by the lane's curvature (vehicles slow down for corners), by the gap
   to the mover ahead on the same lane (keep ``min_gap_cm`` plus a time headway) and set to 0 when the
   agent stands in the mover's path (within ``yield_cm`` ahead, across its width plus the agent radius);
2. the speed moves towards the target within the acceleration/deceleration limits;
3. the advance is capped so that a mover never runs into the one ahead nor into the agent (vehicles stop
   for the agent; the agent is never pushed by a mover that keeps to these rules);
4. ``s`` and the walk-cycle distance advance.

The collision footprints (:meth:`Movers.shapes`) are circles for NPCs and oriented rectangles for vehicles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .collision import ShapeSet
from .paths import LoopSet

NPC_RADIUS_CM = 30.0


@dataclass(frozen=True)
class MoverRules:
    """Motion rules of one group of movers (cm, s)."""

    kind: str  # "npc" or "vehicle"
    accel_cm_s2: float
    decel_cm_s2: float
    min_gap_cm: float
    headway_s: float
    yield_cm: float
    lateral_margin_cm: float
    corner_lat_acc_cm_s2: float | None = None  # None: no curvature limit


NPC_RULES = MoverRules("npc", accel_cm_s2=150.0, decel_cm_s2=400.0, min_gap_cm=60.0, headway_s=0.8, yield_cm=90.0,
                       lateral_margin_cm=10.0)
VEHICLE_RULES = MoverRules("vehicle", accel_cm_s2=250.0, decel_cm_s2=600.0, min_gap_cm=250.0, headway_s=1.2,
                           yield_cm=450.0, lateral_margin_cm=40.0, corner_lat_acc_cm_s2=250.0)


def _speed_limits(loops: LoopSet, lat_acc: float, decel: float, v_cap: float) -> np.ndarray:
    """Per-vertex speed limit: ``sqrt(lat_acc * radius)`` in curves, reached by braking at ``decel`` beforehand."""
    limit = np.full(len(loops.points), v_cap)
    for first, last in loops.loop_vertex_ranges():
        yaw = loops.yaw_rad[first:last + 1]
        cum = loops.cum[first:last + 1]
        seg = np.diff(cum)
        turn = np.abs(np.diff(yaw))
        curv = turn / seg  # 1/cm per segment
        v_seg = np.where(curv > 1e-9, np.sqrt(lat_acc / np.maximum(curv, 1e-12)), v_cap)
        v = np.minimum(np.append(v_seg, v_seg[0]), v_cap)
        n = len(seg)
        for _ in range(2):  # braking ahead of the curves, twice round the loop for the wrap-around
            for i in range(n - 1, -1, -1):
                v[i] = min(v[i], np.sqrt(v[i + 1] ** 2 + 2.0 * decel * seg[i]))
            v[n] = v[0]
        limit[first:last + 1] = v
    return limit


class Movers:
    """A group of movers (all NPCs, or all vehicles) on their lanes; see the module docstring.

    Public arrays (one entry per mover): ``lane``, ``s_cm``, ``speed_cm_s``, ``cruise_cm_s``, ``half_len_cm``
    (centre to front), ``half_width_cm``, ``walk_cm`` (distance walked, drives the NPC walk cycle), and the
    current ``pos_cm`` ``(M, 2)`` / ``yaw_deg``. ``looks`` holds per-mover rendering attributes."""

    def __init__(self, lanes: tuple[np.ndarray, ...], rules: MoverRules, lane: np.ndarray, s_cm: np.ndarray,
                 cruise_cm_s: np.ndarray, half_len_cm: np.ndarray, half_width_cm: np.ndarray, looks: dict[str, np.ndarray]) -> None:
        self.rules = rules
        self.lane = np.asarray(lane, dtype=np.int64)
        self.s_cm = np.asarray(s_cm, dtype=np.float64).copy()
        self.cruise_cm_s = np.asarray(cruise_cm_s, dtype=np.float64)
        self.speed_cm_s = self.cruise_cm_s.copy()
        self.half_len_cm = np.asarray(half_len_cm, dtype=np.float64)
        self.half_width_cm = np.asarray(half_width_cm, dtype=np.float64)
        self.walk_cm = np.zeros(len(self.lane))
        self.looks = looks
        self.loops = LoopSet(list(lanes)) if len(self.lane) else None
        self._limits = (_speed_limits(self.loops, rules.corner_lat_acc_cm_s2, rules.decel_cm_s2, float(self.cruise_cm_s.max()))
                        if self.loops is not None and rules.corner_lat_acc_cm_s2 else None)
        if self.loops is not None:
            self.s_cm = np.mod(self.s_cm, self.loops.lengths[self.lane])
            if self._limits is not None:
                self.speed_cm_s = np.minimum(self.speed_cm_s, self.loops.interp(self._limits, self.lane, self.s_cm))
        self.pos_cm, self.yaw_deg = self._pose()

    def __len__(self) -> int:
        return len(self.lane)

    def _pose(self) -> tuple[np.ndarray, np.ndarray]:
        if self.loops is None:
            return np.zeros((0, 2)), np.zeros(0)
        return self.loops.eval(self.lane, self.s_cm)

    def _gaps(self) -> np.ndarray:
        """Free distance (cm) from each mover's front to the back of the next mover ahead on its lane."""
        order = np.lexsort((self.s_cm, self.lane))
        lanes = self.lane[order]
        nxt = np.roll(order, -1)
        # the last mover of each lane group follows the first one of the same group (the lane is a loop)
        last = np.nonzero(np.append(lanes[1:] != lanes[:-1], True))[0]
        first = np.concatenate([[0], last[:-1] + 1])
        nxt[last] = order[first]
        gap = np.empty(len(order))
        ds = np.mod(self.s_cm[nxt] - self.s_cm[order], self.loops.lengths[lanes])
        gap[order] = np.where(nxt == order, np.inf, ds - self.half_len_cm[order] - self.half_len_cm[nxt])
        return gap

    def step(self, dt_s: float, agent_xy_cm: np.ndarray, agent_radius_cm: float) -> None:
        """Advance every mover by one step of ``dt_s`` seconds (deterministic; see the module docstring)."""
        if not len(self.lane):
            return
        r = self.rules
        pos, yaw = self.pos_cm, np.radians(self.yaw_deg)
        fwd = np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
        right = np.stack([-fwd[:, 1], fwd[:, 0]], axis=1)
        rel = np.asarray(agent_xy_cm, dtype=np.float64)[None, :] - pos
        ahead = np.einsum("ij,ij->i", rel, fwd)
        side = np.abs(np.einsum("ij,ij->i", rel, right))
        in_band = side < self.half_width_cm + agent_radius_cm + r.lateral_margin_cm
        agent_front = ahead - self.half_len_cm - agent_radius_cm  # free distance to the agent when in the band
        agent_blocks = in_band & (ahead > -self.half_len_cm) & (agent_front < r.yield_cm)

        gap = self._gaps()
        target = self.cruise_cm_s.copy()
        if self._limits is not None:
            target = np.minimum(target, self.loops.interp(self._limits, self.lane, self.s_cm))
        target = np.minimum(target, np.maximum(gap - r.min_gap_cm, 0.0) / r.headway_s)
        target = np.where(agent_blocks, 0.0, target)
        v = self.speed_cm_s
        v = np.where(target > v, np.minimum(target, v + r.accel_cm_s2 * dt_s), np.maximum(target, v - r.decel_cm_s2 * dt_s))
        ds = v * dt_s
        ds = np.minimum(ds, np.maximum(gap - 0.5 * r.min_gap_cm, 0.0))
        ds = np.where(in_band & (ahead > -self.half_len_cm), np.minimum(ds, np.maximum(agent_front - 5.0, 0.0)), ds)
        self.speed_cm_s = ds / dt_s
        self.s_cm = np.mod(self.s_cm + ds, self.loops.lengths[self.lane])
        self.walk_cm = self.walk_cm + ds
        self.pos_cm, self.yaw_deg = self._pose()

    def shapes(self) -> ShapeSet:
        """Current collision footprints: circles (NPCs) or oriented rectangles (vehicles)."""
        if self.rules.kind == "npc":
            return ShapeSet(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0), self.pos_cm, self.half_width_cm, "npc")
        return ShapeSet(self.pos_cm, np.stack([self.half_len_cm, self.half_width_cm], axis=1), self.yaw_deg,
                        np.zeros((0, 2)), np.zeros(0), "vehicle")


NPC_SHIRTS = np.array([(0.75, 0.15, 0.12), (0.15, 0.30, 0.65), (0.20, 0.55, 0.25), (0.90, 0.80, 0.20), (0.92, 0.92, 0.90),
                       (0.30, 0.30, 0.32), (0.60, 0.25, 0.55), (0.95, 0.50, 0.15), (0.25, 0.60, 0.70)])
NPC_PANTS = np.array([(0.12, 0.14, 0.25), (0.20, 0.20, 0.22), (0.45, 0.38, 0.28), (0.10, 0.10, 0.10), (0.30, 0.35, 0.50)])
NPC_SKIN = np.array([(0.96, 0.80, 0.66), (0.86, 0.66, 0.50), (0.66, 0.46, 0.32), (0.42, 0.28, 0.18)])
NPC_HAIR = np.array([(0.10, 0.07, 0.05), (0.35, 0.22, 0.10), (0.75, 0.60, 0.30), (0.55, 0.55, 0.55)])
CAR_PAINT = np.array([(0.80, 0.10, 0.10), (0.12, 0.25, 0.60), (0.92, 0.92, 0.92), (0.10, 0.10, 0.11), (0.55, 0.57, 0.60),
                      (0.15, 0.45, 0.25), (0.95, 0.75, 0.10), (0.45, 0.10, 0.40)])


def _place(rng: np.random.Generator, lanes: tuple[np.ndarray, ...], count: int, spacing_cm: float) -> tuple[np.ndarray, np.ndarray]:
    """Spread ``count`` movers over the lanes, round-robin from a seeded lane order, evenly spaced with jitter."""
    if count == 0 or not lanes:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    loops = LoopSet(list(lanes))
    capacity = np.floor(loops.lengths / spacing_cm).astype(np.int64)
    per_lane = np.zeros(len(lanes), dtype=np.int64)
    order = rng.permutation(len(lanes))
    placed = 0
    while placed < count and np.any(per_lane < capacity):
        for ln in order:
            if placed < count and per_lane[ln] < capacity[ln]:
                per_lane[ln] += 1
                placed += 1
    lane_ids, s = [], []
    for ln in range(len(lanes)):
        k = int(per_lane[ln])
        if k == 0:
            continue
        step = loops.lengths[ln] / k
        base = rng.uniform(0.0, step)
        jitter = rng.uniform(-0.25, 0.25, k) * (step - spacing_cm)
        lane_ids += [ln] * k
        s += list(base + np.arange(k) * step + jitter)
    return np.asarray(lane_ids, dtype=np.int64), np.asarray(s, dtype=np.float64)


def spawn_npcs(rng: np.random.Generator, lanes: tuple[np.ndarray, ...], count: int,
               speed_range_cm_s: tuple[float, float]) -> Movers:
    """``count`` walking people (fewer if the lanes are full), with seeded looks and walking speeds."""
    lane, s = _place(rng, lanes, count, 250.0)
    n = len(lane)
    looks = {
        "height_cm": rng.uniform(160.0, 188.0, n),
        "shirt": NPC_SHIRTS[rng.integers(len(NPC_SHIRTS), size=n)],
        "pants": NPC_PANTS[rng.integers(len(NPC_PANTS), size=n)],
        "skin": NPC_SKIN[rng.integers(len(NPC_SKIN), size=n)],
        "hair": NPC_HAIR[rng.integers(len(NPC_HAIR), size=n)],
    }
    cruise = rng.uniform(speed_range_cm_s[0], speed_range_cm_s[1], n)
    return Movers(lanes, NPC_RULES, lane, s, cruise, np.full(n, NPC_RADIUS_CM), np.full(n, NPC_RADIUS_CM), looks)


def spawn_vehicles(rng: np.random.Generator, lanes: tuple[np.ndarray, ...], count: int,
                   speed_range_cm_s: tuple[float, float]) -> Movers:
    """``count`` cars and vans (fewer if the lanes are full), with seeded paint, size and cruise speed."""
    lane, s = _place(rng, lanes, count, 1400.0)
    n = len(lane)
    van = rng.random(n) < 0.2
    length = np.where(van, rng.uniform(480.0, 540.0, n), rng.uniform(400.0, 470.0, n))
    width = np.where(van, rng.uniform(195.0, 205.0, n), rng.uniform(175.0, 190.0, n))
    looks = {
        "van": van,
        "height_cm": np.where(van, rng.uniform(200.0, 230.0, n), rng.uniform(135.0, 155.0, n)),
        "paint": CAR_PAINT[rng.integers(len(CAR_PAINT), size=n)],
    }
    cruise = rng.uniform(speed_range_cm_s[0], speed_range_cm_s[1], n)
    return Movers(lanes, VEHICLE_RULES, lane, s, cruise, length / 2, width / 2, looks)
