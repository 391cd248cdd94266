"""unreal_bridge: Unreal-side sources in the canonical Unreal frame (cm, Z up, X forward, Y right).

Public API (names load their modules on first use, so ``import unreal_bridge`` stays light and pulls in
neither Panda3D nor scipy until asked):

* the built-in sandbox: :class:`SandboxWorld`, :class:`WanderController`, :func:`render_preview`;
* navmesh planning: :class:`NavMesh`, :class:`PathResult`, :class:`NavMeshError`, :func:`load_obj`,
  :func:`load_walkable`; seeded tours: :func:`generate_route`, :class:`RouteConfig`;
* the float64 camera: :class:`CameraRig`; the navmesh controller: :func:`make_navmesh_controller`;
* UnrealCV: :func:`serve` / :class:`UnrealCVServer` (the sandbox as a server), :class:`UnrealCVWorld`;
* in-engine recordings: :func:`import_unreal`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SandboxWorld": "unreal_bridge.sandbox", "WanderController": "unreal_bridge.sandbox",
    "render_preview": "unreal_bridge.sandbox",
    "NavMesh": "unreal_bridge.navmesh", "PathResult": "unreal_bridge.navmesh", "NavMeshError": "unreal_bridge.navmesh",
    "load_obj": "unreal_bridge.navmesh", "load_walkable": "unreal_bridge.navmesh",
    "generate_route": "unreal_bridge.routes", "RouteConfig": "unreal_bridge.routes",
    "CameraRig": "unreal_bridge.camera",
    "make_navmesh_controller": "unreal_bridge.navmesh_controller",
    "NavmeshController": "unreal_bridge.navmesh_controller",
    "UnrealCVWorld": "unreal_bridge.unrealcv_world", "UnrealCVConfig": "unreal_bridge.unrealcv_world",
    "serve": "unreal_bridge.unrealcv_server", "UnrealCVServer": "unreal_bridge.unrealcv_server",
    "import_unreal": "unreal_bridge.ue_import",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'unreal_bridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
