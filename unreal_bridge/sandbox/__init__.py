"""The built-in sandbox: procedural Panda3D levels (city, indoor, park) rendered offscreen in software.

Public API: :class:`SandboxWorld` (a :class:`capture.world.World`), :class:`WanderController` (a
:class:`capture.world.Controller` that explores like a person), :func:`render_preview` (frame 0 as PNG).
Panda3D is imported only when a world renders.
"""

from .agent import AgentParams, AgentState
from .atmosphere import WEATHERS
from .layout import SCENES
from .preview import render_preview
from .wander import WanderController
from .world import SandboxWorld

__all__ = ["SandboxWorld", "WanderController", "render_preview", "AgentParams", "AgentState", "SCENES", "WEATHERS"]
