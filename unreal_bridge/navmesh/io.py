"""Loading navmeshes: Wavefront OBJ (Unreal/Recast export), JSON meshes, the sandbox's walkable-area export.

Frames. playmill's canonical frame is Unreal's: left-handed, Z up, X forward, Y right, centimetres.
Recast/Detour (and the ``.obj`` files Unreal's ``ExportNavigationData`` or RecastDemo write) use a right-handed
Y-up frame; Unreal converts with ``Unreal2RecastPoint(v) = (-v.X, v.Z, -v.Y)`` (units unchanged, cm), so

    Recast -> Unreal:  (X, Y, Z) = (-r_x, -r_z, r_y)

The map has determinant -1 (it changes handedness), so it reverses polygon winding; ``NavMesh`` normalises
winding anyway. ``scale_to_cm`` converts files written in other units (e.g. 100 for metres).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np

from .mesh import NavMesh
from .types import NavMeshError

WALKABLE_SCHEMA = "playmill.walkable/1"


def unreal_to_recast(points_cm) -> np.ndarray:
    """Unreal ``(X, Y, Z)`` -> Recast ``(-X, Z, -Y)`` (Unreal's ``Unreal2RecastPoint``), ``(..., 3)``."""
    p = np.asarray(points_cm, dtype=np.float64)
    return np.stack([-p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def recast_to_unreal(points) -> np.ndarray:
    """Recast ``(x, y, z)`` (Y up) -> Unreal ``(-x, -z, y)``, the inverse of ``unreal_to_recast``."""
    p = np.asarray(points, dtype=np.float64)
    return np.stack([-p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


def parse_obj(text: str, source: str = "<obj>") -> tuple[np.ndarray, list[list[int]]]:
    """Vertices ``(V, 3)`` and 0-based polygons from Wavefront OBJ text (``v`` and ``f`` records; ``f``
    entries may be ``i``, ``i/t``, ``i//n``, ``i/t/n`` and negative = relative; other records ignored)."""
    verts: list[list[float]] = []
    polys: list[list[int]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        tag, *rest = line.split()
        if tag == "v":
            if len(rest) < 3:
                raise NavMeshError(f"{source}:{lineno}: a vertex needs 3 coordinates: {raw!r}")
            try:
                verts.append([float(x) for x in rest[:3]])
            except ValueError as exc:
                raise NavMeshError(f"{source}:{lineno}: bad vertex {raw!r}") from exc
        elif tag == "f":
            face = []
            for tok in rest:
                try:
                    k = int(tok.split("/", 1)[0])
                except ValueError as exc:
                    raise NavMeshError(f"{source}:{lineno}: bad face index {tok!r}") from exc
                if k == 0:
                    raise NavMeshError(f"{source}:{lineno}: OBJ indices start at 1, got 0")
                face.append(k - 1 if k > 0 else len(verts) + k)
            polys.append(face)
    if not verts or not polys:
        raise NavMeshError(f"{source}: no vertices or faces found")
    return np.asarray(verts, dtype=np.float64), polys


def load_obj(
    path: str | Path,
    *,
    frame: Literal["recast", "unreal"] = "recast",
    scale_to_cm: float = 1.0,
    **mesh_kwargs,
) -> NavMesh:
    """NavMesh from an ``.obj``. ``frame="recast"`` (default): the file is in Recast's Y-up frame, as Unreal
    and RecastDemo export navigation data; it is converted with ``recast_to_unreal``. ``frame="unreal"``:
    the file is already in the Unreal frame. Coordinates are multiplied by ``scale_to_cm``."""
    path = Path(path)
    verts, polys = parse_obj(path.read_text(), str(path))
    if frame == "recast":
        verts = recast_to_unreal(verts)
    elif frame != "unreal":
        raise ValueError(f"frame must be 'recast' or 'unreal', got {frame!r}")
    try:
        return NavMesh(verts * float(scale_to_cm), polys, name=mesh_kwargs.pop("name", path.stem), **mesh_kwargs)
    except NavMeshError as exc:
        raise NavMeshError(f"{path}: {exc}") from exc


def save_obj(mesh: NavMesh, path: str | Path, *, frame: Literal["recast", "unreal"] = "recast") -> None:
    """Write a mesh as ``.obj`` (in Recast's frame by default, the inverse of ``load_obj``)."""
    verts = unreal_to_recast(mesh.vertices_cm) if frame == "recast" else mesh.vertices_cm
    lines = [f"# playmill navmesh {mesh.name} ({frame} frame, cm)"]
    lines += [f"v {x:.17g} {y:.17g} {z:.17g}" for x, y, z in verts]
    for p in range(mesh.num_polys):
        lines.append("f " + " ".join(str(int(i) + 1) for i in mesh.poly_verts[p, : mesh.poly_nverts[p]]))
    Path(path).write_text("\n".join(lines) + "\n")


def mesh_from_dict(data: dict, source: str = "<json>", **mesh_kwargs) -> NavMesh:
    """NavMesh from ``{"vertices": [[x, y, z], ...], "polygons": [[i, j, k, ...], ...]}`` (Unreal frame, cm).

    With ``"schema": "playmill.walkable/1"`` (the sandbox export) the keys ``frame`` (must be ``"unreal"``),
    ``units`` (must be ``"cm"``), ``scene`` and ``seed`` are checked and kept in ``mesh.metadata``."""
    if not isinstance(data, dict):
        raise NavMeshError(f"{source}: expected a JSON object with 'vertices' and 'polygons'")
    for key in ("vertices", "polygons"):
        if key not in data:
            raise NavMeshError(f"{source}: missing key {key!r}")
    meta = {}
    schema = data.get("schema")
    if schema is not None:
        if schema != WALKABLE_SCHEMA:
            raise NavMeshError(f"{source}: unknown schema {schema!r} (expected {WALKABLE_SCHEMA!r})")
        for key, want in (("frame", "unreal"), ("units", "cm")):
            if data.get(key) != want:
                raise NavMeshError(f"{source}: {key} must be {want!r}, got {data.get(key)!r}")
        meta = {k: data[k] for k in ("schema", "frame", "units", "scene", "seed") if k in data}
    try:
        verts = np.asarray(data["vertices"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise NavMeshError(f"{source}: 'vertices' must be a list of [x, y, z] numbers") from exc
    polys = data["polygons"]
    if not isinstance(polys, list) or not all(isinstance(p, list) and all(isinstance(i, int) for i in p) for p in polys):
        raise NavMeshError(f"{source}: 'polygons' must be a list of lists of vertex indices")
    name = mesh_kwargs.pop("name", str(meta.get("scene", source)))
    try:
        return NavMesh(verts, polys, name=name, metadata=meta, **mesh_kwargs)
    except NavMeshError as exc:
        raise NavMeshError(f"{source}: {exc}") from exc


def load_json(path: str | Path, **mesh_kwargs) -> NavMesh:
    """NavMesh from a JSON mesh file (see ``mesh_from_dict``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise NavMeshError(f"{path}: invalid JSON: {exc}") from exc
    return mesh_from_dict(data, str(path), **mesh_kwargs)


def load_walkable(path_or_dict, **mesh_kwargs) -> NavMesh:
    """NavMesh from the sandbox's walkable-area export (schema ``playmill.walkable/1``): a file path or the
    already-parsed dict. The schema key is required here."""
    if isinstance(path_or_dict, dict):
        data, source = path_or_dict, "<walkable>"
    else:
        source = str(path_or_dict)
        try:
            data = json.loads(Path(path_or_dict).read_text())
        except json.JSONDecodeError as exc:
            raise NavMeshError(f"{source}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("schema") != WALKABLE_SCHEMA:
        raise NavMeshError(f"{source}: not a walkable-area export (schema must be {WALKABLE_SCHEMA!r})")
    return mesh_from_dict(data, source, **mesh_kwargs)


def to_dict(mesh: NavMesh) -> dict:
    """The mesh as a JSON-ready dict (Unreal frame, cm), loadable by ``mesh_from_dict``."""
    return {
        "vertices": mesh.vertices_cm.tolist(),
        "polygons": [mesh.poly_verts[p, : mesh.poly_nverts[p]].tolist() for p in range(mesh.num_polys)],
    }
