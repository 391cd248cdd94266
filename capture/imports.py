"""What an import of existing recordings (Sekai, generic, Unreal, GTA V) reports: the same shape for every
source, so ``playmill import ...`` prints and exits the same way for all of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ImportResult"]


@dataclass
class ImportResult:
    """``written``: episode folders written now; ``skipped``: names of recordings whose episode already
    existed (a rerun); ``failed``: ``(recording, reason)`` for each recording that was quarantined or failed
    (the others still import); ``frames``: frames written; ``rejects_path``: the JSON-lines file the quarantined
    recordings are listed in (None when nothing was rejected or the source keeps none); ``warnings``: what
    imported but deserves a look, each saying what to change; ``notes``: what the import decided, one line per
    recording (e.g. how a GTA V session was aligned)."""

    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    frames: int = 0
    rejects_path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
