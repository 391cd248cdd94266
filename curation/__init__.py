"""playmill curation: episodes -> curated, sharded clips for training (DESIGN.md sections 3-4).

Stages (:mod:`curation.stages`): redundant frames, velocity validation, resampling (by fps or by motion),
resize/centre crop, clipping, the held-out split and the action-label check. :func:`curate` runs them over an episodes folder on a local process pool or
Ray Data and writes Parquet shards, rejects and a manifest (:mod:`curation.shards`); :mod:`curation.reader`
is the training reader (the only module the model package imports); :mod:`curation.importers` (Sekai),
:mod:`curation.generic` (any video + actions CSV, by a column mapping) and :mod:`curation.vpt` (OpenAI's VPT
Minecraft contractor recordings) bring existing footage in as episodes, checked by :mod:`curation.import_check`;
:func:`write_report` writes an HTML report. :mod:`curation.consistency` checks action labels against the camera
motion in the video (the stage :class:`ConsistencyCheck`, and ``check_episodes`` for ``playmill validate
--actions``); :mod:`curation.split` assigns held-out splits (the stage :class:`HeldOutSplit`).

``import curation`` is light: the names below load their modules on first use (torch and ray only where used).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CurateConfig": "curation.config", "DedupConfig": "curation.config", "VelocityConfig": "curation.config",
    "ResampleConfig": "curation.config", "ClipConfig": "curation.config", "OutputConfig": "curation.config",
    "CurateSection": "curation.config",
    "curate": "curation.runner", "CurateResult": "curation.runner",
    "inspect_shards": "curation.shards", "verify_shards": "curation.shards", "read_manifest": "curation.shards",
    "ShardsError": "curation.shards",
    "write_report": "curation.report",
    "import_sekai": "curation.importers", "SekaiImportConfig": "curation.importers", "ImportResult": "curation.importers",
    "import_generic": "curation.generic", "check_generic": "curation.generic", "GenericMapping": "curation.generic",
    "import_vpt": "curation.vpt", "VPTImportConfig": "curation.vpt",
    "ShardDataset": "curation.reader", "ShardIterableDataset": "curation.reader",
    "ConsistencyConfig": "curation.config", "SplitConfig": "curation.config",
    "ConsistencyCheck": "curation.consistency", "analyse_episode": "curation.consistency", "diagnose": "curation.consistency", "Diagnosis": "curation.consistency",
    "Fault": "curation.consistency", "Labels": "curation.consistency", "labels_from_table": "curation.consistency",
    "check_episode": "curation.consistency", "check_episodes": "curation.consistency",
    "score_window": "curation.consistency", "clip_flags": "curation.consistency",
    "HeldOutSplit": "curation.split", "assign_split": "curation.split", "manifest_split": "curation.split", "episodes_in": "curation.split",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'curation' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
