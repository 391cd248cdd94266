"""What an import of existing recordings (Sekai, generic, Unreal, GTA V) reports, and where it quarantines what
it cannot use: the same shape for every source, so ``playmill import ...`` prints and exits the same way for all
of them (DESIGN.md sections 3 and 8).

An import never loses what it cannot use: each refused item (a recording, a clip, a span of frames) is written
with its reason to ``<episodes_dir>/../rejects/<source>-<name>.jsonl`` (:func:`rejects_path`; the name passes
:func:`capture.names.check_name`), atomically (:func:`capture.atomic.write_jsonl_atomic`). An import that produced
nothing from its input, or had no input at all, is not a success: :attr:`ImportResult.exit_code` is 1 and
:attr:`ImportResult.nothing` says why.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from capture.names import check_name

__all__ = ["REJECTS_DIR", "ImportResult", "rejects_path", "write_rejects"]

#: The quarantine folder, beside the episodes folder.
REJECTS_DIR = "rejects"


def rejects_path(episodes_dir: str | os.PathLike, source: str, name: str) -> Path:
    """``<episodes_dir>/../rejects/<source>-<name>.jsonl`` (absolute). ``source`` and ``name`` must be safe
    names (:class:`capture.names.UnsafeNameError` otherwise): the file stays in the rejects folder."""
    check_name(source, "rejects source")
    check_name(name, f"{source} rejects name")
    return Path(episodes_dir).resolve().parent / REJECTS_DIR / f"{source}-{name}.jsonl"


def write_rejects(episodes_dir: str | os.PathLike, source: str, name: str, records: Iterable[Mapping[str, Any]],
                  fallback: str = "import") -> Path:
    """Write an import's quarantine records (``source`` added to each) to :func:`rejects_path`, the file named
    after ``name`` made safe (:func:`capture.names.slug`; ``fallback`` when nothing of it is left), atomically;
    returns the path."""
    from capture.atomic import write_jsonl_atomic
    from capture.names import slug

    return write_jsonl_atomic(rejects_path(episodes_dir, source, slug(name, fallback=fallback)),
                              [{"source": source, **dict(r)} for r in records])


@dataclass
class ImportResult:
    """``written``: episode folders written now; ``skipped``: names of recordings whose episode already
    existed (a rerun); ``failed``: ``(recording, reason)`` for each recording that was quarantined or failed
    (the others still import); ``frames``: frames written; ``rejects_path``: the JSON-lines file the quarantined
    recordings are listed in (None when nothing was rejected or the source keeps none); ``warnings``: what
    imported but deserves a look, each saying what to change; ``notes``: what the import decided, one line per
    recording (e.g. how a GTA V session was aligned); ``nothing``: why there was nothing to import at all (an
    empty folder), when so."""

    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    frames: int = 0
    rejects_path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    nothing: str | None = None

    def add_written(self, episode: Path) -> None:
        """Count an episode folder written now (its frames from its meta.json)."""
        self.written.append(episode)
        self.frames += int(json.loads((episode / "meta.json").read_text(encoding="utf-8"))["frame_count"])

    @property
    def exit_code(self) -> int:
        """0 when every recording was imported or was already there; 1 when one failed (quarantined) or nothing
        came of the input (no empty success)."""
        return 1 if self.failed or self.nothing is not None or not (self.written or self.skipped) else 0
