"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Each write goes to a unique temporary file in the target's folder, is flushed and fsynced, then renamed over
the target (``os.replace`` is atomic on POSIX and Windows); the temporary file is removed if anything fails.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = ["to_jsonable", "write_json_atomic", "write_jsonl_atomic", "write_text_atomic"]


def to_jsonable(obj: Any) -> Any:
    """Plain JSON values: dataclasses -> dicts, tuples and sets -> lists, paths -> strings, numpy scalars and
    arrays -> numbers and lists, non-finite floats -> None (strict JSON, which every reader accepts)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist") and type(obj).__module__ == "numpy":
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating its folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int = 1) -> Path:
    """Write ``obj`` as strict JSON (:func:`to_jsonable`) to ``path`` atomically; returns the path."""
    return write_text_atomic(path, json.dumps(to_jsonable(obj), indent=indent, allow_nan=False) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``records`` as JSON lines (strict JSON, :func:`to_jsonable`) to ``path`` atomically; returns the
    path."""
    return write_text_atomic(path, "".join(json.dumps(to_jsonable(dict(r)), allow_nan=False) + "\n"
                                           for r in records))
