"""Result dataclasses and errors of the navmesh API (all positions in the Unreal frame, float64 cm)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

PathStatus = Literal["complete", "partial", "no_path"]


class NavMeshError(ValueError):
    """A mesh cannot be built: bad coordinates, degenerate or non-convex polygons, non-manifold edges."""


class OffMeshError(NavMeshError):
    """A query point is farther from the mesh than the allowed snapping distance."""


@dataclass(frozen=True)
class NearestPoly:
    """The polygon closest to a query point and the closest point on it.

    ``dist_cm`` is the 3D distance from the query to ``pos_cm``; ``over`` is true when the query's (x, y)
    lies inside the polygon, so ``pos_cm`` is the query moved vertically onto the surface."""

    poly: int
    pos_cm: np.ndarray
    dist_cm: float
    over: bool


@dataclass(frozen=True)
class PathResult:
    """A straight (string-pulled) path over the mesh.

    ``points_cm`` (K, 3): start, the corners where the path bends, goal (for ``partial``: the reachable point
    closest to the goal); start and goal are the snapped points on the surface. ``polys``: the polygons the
    path crosses, in order (``visibility``: every polygon the straight segments pass through over more
    than ``eps_cm``; ``corridor``: Detour's corridor, the polygons chosen by the A*). ``status``: ``complete``;
    ``partial`` when the goal cannot be reached (other island, or off the mesh): the path leads to the
    point of the start's island closest to the goal; ``no_path`` when the start is off the mesh (then
    ``points_cm`` is empty). ``reason`` says why a path is partial or missing. ``method``: ``visibility``
    (exact Euclidean shortest path through the corner graph) or ``corridor`` (Detour-style A* + funnel)."""

    points_cm: np.ndarray
    polys: list[int]
    status: PathStatus
    length_cm: float
    method: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "complete"


@dataclass(frozen=True)
class RaycastResult:
    """A 2D ray walked over the mesh from its start polygon (Detour ``raycast``).

    ``hit``: a wall (boundary edge) stops the ray before its end. ``t``: fraction of the segment travelled
    (``inf`` when no hit, like Detour's FLT_MAX). ``pos_cm``: the hit point (or the end point). ``normal``:
    unit wall normal in the xy plane pointing back into the walkable area (zeros when no hit).
    ``polys``: polygons visited, in order."""

    hit: bool
    t: float
    pos_cm: np.ndarray
    normal: np.ndarray
    polys: list[int] = field(default_factory=list)
    distance_cm: float = 0.0


@dataclass(frozen=True)
class MoveResult:
    """Result of sliding a point along the mesh surface (Detour ``moveAlongSurface``).

    ``pos_cm`` is the reached point (the target if it was reachable inside the search circle, else the
    closest point to the target on the walls of the visited polygons); ``blocked`` when it is not the target."""

    pos_cm: np.ndarray
    poly: int
    visited: list[int]
    blocked: bool
