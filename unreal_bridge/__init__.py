"""unreal_bridge: sources that play the part of an Unreal level, in the canonical Unreal frame (cm, Z up).

Public API of the built-in sandbox (Panda3D is imported only when a world renders):
:class:`SandboxWorld`, :class:`WanderController`, :func:`render_preview`.
"""

from .sandbox import SandboxWorld, WanderController, render_preview

__all__ = ["SandboxWorld", "WanderController", "render_preview"]
