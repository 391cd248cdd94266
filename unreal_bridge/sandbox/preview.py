"""Preview images of sandbox levels: frame 0 of a scene and seed written as a PNG."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .world import SandboxWorld


def render_preview(scene: str, seed: int, out_path: str | os.PathLike, width: int = 640, height: int = 352,
                   **world_params: Any) -> Path:
    """Render frame 0 of ``scene`` with ``seed`` and write it to ``out_path`` as PNG; returns the path.

    ``world_params`` are passed to :class:`SandboxWorld` (weather, time_of_day, densities, fov_deg, ...)."""
    import cv2  # local import: keeps `import unreal_bridge` light

    out = Path(out_path)
    with SandboxWorld(scene=scene, width=width, height=height, **world_params) as world:
        frame = world.reset(seed).frame
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), frame[:, :, ::-1]):
        raise OSError(f"could not write the preview PNG {out}")
    return out
