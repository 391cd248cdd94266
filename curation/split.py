"""Held-out split: which of train / val / test an episode belongs to (deterministic, stable).

    u = int(sha256("<salt>:<key>")[:16 hex digits]) / 2^64        key: the episode id, its scene or its seed
    split = test if u < test, val if u < test + val, else train

An episode's split depends only on its own key, so adding episodes never moves one already assigned, reruns
agree, and ``by: scene`` holds whole scenes out. The curation stage :class:`HeldOutSplit` (``curate.split``)
writes the split into every clip row (column ``split``); curation keeps each shard to one split and records the
assignment in manifest.json (``split``); training reads ``train`` and validates on ``val``; ``playmill
generate`` and ``playmill eval`` use ``test``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable, Mapping

from curation.config import SPLITS, CurateConfig, SplitConfig
from curation.stage import Clip, EpisodeContext, Item, Stage


def split_key(cfg: SplitConfig, episode_id: str, scene: str = "", seed: int | None = None) -> str:
    """The value the split hashes: the episode id, the scene or the seed (``cfg.by``)."""
    if cfg.by == "scene":
        return f"scene:{scene}"
    if cfg.by == "seed":
        return f"seed:{seed}"
    return episode_id


def split_unit(key: str, salt: int = 0) -> float:
    """``sha256("<salt>:<key>")`` as a number in [0, 1)."""
    return int(hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()[:16], 16) / float(1 << 64)


def assign_split(cfg: SplitConfig, episode_id: str, scene: str = "", seed: int | None = None) -> str:
    """``train``, ``val`` or ``test`` for one episode (module doc)."""
    u = split_unit(split_key(cfg, episode_id, scene, seed), cfg.salt)
    if u < cfg.test:
        return "test"
    if u < cfg.test + cfg.val:
        return "val"
    return "train"


class HeldOutSplit(Stage):
    """Stage ``split`` (config ``split``): assigns the episode to train, val or test (:func:`assign_split`, noted as
    ``ep.notes["split"]``) and writes it into the ``split`` column of each of its clips; its manifest section is the
    rule, each episode's split and the episodes and clips per split. Never drops anything."""

    name = "split"

    @classmethod
    def enabled(cls, cfg: CurateConfig) -> bool:
        return cfg.split.enabled

    def clip_fields(self) -> list:
        import pyarrow as pa

        return [pa.field("split", pa.string())]

    def start(self, ep: EpisodeContext) -> None:
        super().start(ep)
        self.split = assign_split(self.cfg.split, ep.episode_id, ep.meta.scene, ep.meta.seed)
        ep.notes["split"] = self.split

    def process(self, items: list[Item]) -> list[Item]:
        for it in items:
            if isinstance(it, Clip):
                it.columns["split"] = self.split
        return items

    def summarise(self, outcomes: Mapping[str, Mapping[str, Any]], work_dirs: Mapping[str, Path],
                  out_dir: Path) -> dict[str, Any]:
        split_of = {e: o["notes"]["split"] for e, o in outcomes.items() if (o.get("notes") or {}).get("split")}
        clips = {s: 0 for s in SPLITS}
        for e, sp in split_of.items():
            clips[sp] += int(outcomes[e].get("clips") or 0)
        return {**self.cfg.split.to_dict(), "episodes": dict(sorted(split_of.items())),
                "episode_counts": split_counts(split_of), "clip_counts": clips}


def episode_split(outcome: Mapping[str, Any]) -> str:
    """The split an episode's curation outcome noted (``train`` when the split stage did not run)."""
    return (outcome.get("notes") or {}).get("split") or "train"


def split_counts(assignment: Mapping[str, str]) -> dict[str, int]:
    """Episodes per split (every split named, 0 when empty)."""
    out = {s: 0 for s in SPLITS}
    for v in assignment.values():
        out[v] = out.get(v, 0) + 1
    return out


def manifest_split(manifest: Mapping[str, Any]) -> dict[str, str]:
    """``{episode_id: split}`` recorded in a shards manifest (empty for datasets curated before splits)."""
    sp = manifest.get("split") if isinstance(manifest, Mapping) else None
    eps = sp.get("episodes") if isinstance(sp, Mapping) else None
    return dict(eps) if isinstance(eps, Mapping) else {}


def episodes_in(manifest: Mapping[str, Any], splits: Iterable[str]) -> list[str]:
    """Episode ids of the given splits, sorted."""
    want = set(splits)
    return sorted(e for e, s in manifest_split(manifest).items() if s in want)


__all__ = ["split_key", "split_unit", "assign_split", "HeldOutSplit", "episode_split", "split_counts",
           "manifest_split", "episodes_in"]
