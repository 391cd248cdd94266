"""Navigation meshes in the Unreal frame: load, validate, locate, find paths, sample, raycast, slide.

    from unreal_bridge.navmesh import NavMesh, load_obj
    mesh = load_obj("navmesh.obj")                 # Recast Y-up export -> Unreal frame (cm)
    path = mesh.find_path(start_cm, goal_cm)       # PathResult(points_cm, polys, status, length_cm)

Paths on planar meshes are exact Euclidean shortest paths (corner visibility graph, ``visibility.py``);
layered meshes use Detour's A* over edge midpoints plus the funnel (``search.py``).
"""

from .io import (
    WALKABLE_SCHEMA,
    load_json,
    load_obj,
    load_walkable,
    mesh_from_dict,
    parse_obj,
    recast_to_unreal,
    save_obj,
    to_dict,
    unreal_to_recast,
)
from .mesh import NavMesh
from .search import astar_corridor, string_pull
from .synthetic import ZIGZAG_LARGE, ZIGZAG_SMALL, grid_mesh, zigzag_blocked, zigzag_grid
from .types import MoveResult, NavMeshError, NearestPoly, OffMeshError, PathResult, PathStatus, RaycastResult

__all__ = [
    "NavMesh",
    "NavMeshError",
    "OffMeshError",
    "NearestPoly",
    "PathResult",
    "PathStatus",
    "RaycastResult",
    "MoveResult",
    "load_obj",
    "save_obj",
    "parse_obj",
    "load_json",
    "load_walkable",
    "mesh_from_dict",
    "to_dict",
    "unreal_to_recast",
    "recast_to_unreal",
    "WALKABLE_SCHEMA",
    "astar_corridor",
    "string_pull",
    "grid_mesh",
    "zigzag_grid",
    "zigzag_blocked",
    "ZIGZAG_SMALL",
    "ZIGZAG_LARGE",
]
