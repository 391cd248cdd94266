"""The Hugging Face dataset card of a shards folder: ``README.md`` with a YAML ``configs:`` block.

``datasets.load_dataset(shards_dir)`` reads the YAML front matter of ``README.md`` and, when it has a
``configs:`` block, uses only the files its ``data_files`` name (``datasets`` ``load.py``,
``LocalDatasetModuleFactory``). Without it every Parquet file of the folder is read with the first one's schema
and ``rejects.parquet`` fails with a CastError. The card declares:

* ``default``: the clip shards, one Hugging Face split per held-out split of the manifest (each shard holds one
  split; shards of datasets curated before splits existed are ``train``);
* ``rejects``: ``rejects.parquet`` (``load_dataset(shards_dir, "rejects")``);
* ``consistency``: the action-label check samples, when the folder has them.

Below the YAML: what the dataset is, its sources and hours, the splits, the columns and how to load and export
it. Written atomically by curation beside the shards (before the manifest, which is written last).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from curation.schema import MANIFEST_FILE, REJECTS_FILE

CARD_FILE = "README.md"
#: The held-out splits, in the order the card lists them (issue 13: curation.split).
SPLIT_ORDER: tuple[str, ...] = ("train", "val", "test")
#: Optional files with their own schema, each exposed as its own config when present.
EXTRA_CONFIGS: tuple[tuple[str, str, str], ...] = (
    ("consistency", "consistency.parquet", "the action-label check: labelled against visual motion, per sample"),
)

_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("clip_id", "string", "`<episode_id>-f<start_frame>`"),
    ("episode_id", "string", "the source episode"),
    ("source", "string", "sandbox, unrealcv, unreal_export, gta, sekai or generic"),
    ("scene", "string", "scene or map name"),
    ("start_frame", "int64", "the clip's first frame in the episode's actions.csv"),
    ("num_frames", "int32", "frames in the clip"),
    ("fps", "float64", "frames per second"),
    ("height, width", "int32", "pixels"),
    ("video", "binary", "the clip as an H.264 MP4 (frame_codec h264)"),
    ("frames", "list<binary>", "one JPEG per frame (frame_codec jpeg)"),
    ("keyboard", "list<list<uint8>[K]>", "per frame, 1 when the key was held (keys below)"),
    ("mouse", "list<list<float32>[2]>", "per frame: d_pitch, d_yaw in degrees since the previous frame (look up +, turn right +)"),
    ("pose", "list<list<float64>[7]>", "per frame: x, y, z (cm, Unreal frame: X forward, Y right, Z up), qw, qx, qy, qz"),
    ("speed", "list<float32>", "per frame: signed ground speed along the camera's forward axis, cm/s"),
    ("collision", "list<bool>", "per frame: the agent was blocked"),
    ("split", "string", "train, val or test (the held-out split of the episode)"),
)


def shard_splits(manifest: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{split: [shard file, ...]}`` from the manifest, splits in :data:`SPLIT_ORDER` (others after, sorted);
    a shard without a ``split`` entry is ``train``; splits without shards are left out."""
    out: dict[str, list[str]] = {}
    for s in manifest.get("shards", []):
        out.setdefault(str(s.get("split") or "train"), []).append(str(s["file"]))
    order = [s for s in SPLIT_ORDER if s in out] + sorted(s for s in out if s not in SPLIT_ORDER)
    return {s: out[s] for s in order}


def card_yaml(manifest: Mapping[str, Any], folder_name: str, extra_files: tuple[str, ...] = ()) -> str:
    """The YAML front matter (without the ``---`` lines): configs, and the Hub's metadata fields."""
    import yaml

    splits = shard_splits(manifest)
    configs: list[dict[str, Any]] = [{
        "config_name": "default",
        "default": True,
        "data_files": [{"split": sp, "path": files} for sp, files in splits.items()],
    }, {
        "config_name": "rejects",
        "data_files": [{"split": "train", "path": REJECTS_FILE}],
    }]
    for name, file, _ in EXTRA_CONFIGS:
        if file in extra_files:
            configs.append({"config_name": name, "data_files": [{"split": "train", "path": file}]})
    clips = int(manifest.get("totals", {}).get("clips", 0))
    size = ("n<1K" if clips < 1_000 else "1K<n<10K" if clips < 10_000 else "10K<n<100K" if clips < 100_000
            else "100K<n<1M" if clips < 1_000_000 else "n>1M")
    meta = {
        "pretty_name": f"playmill {folder_name}",
        "tags": ["world-model", "video", "gameplay", "actions", "keyboard-mouse", "playmill"],
        "size_categories": [size],
        "configs": configs,
    }
    return yaml.safe_dump(meta, sort_keys=False, width=120)


def _hours(h: float) -> str:
    return f"{h:.2f} h" if h >= 0.1 else f"{h * 60:.1f} min"


def card_text(manifest: Mapping[str, Any], folder_name: str, extra_files: tuple[str, ...] = ()) -> str:
    """The whole card: YAML front matter, then the description in Markdown."""
    totals = manifest.get("totals", {})
    keys = list(manifest.get("action_space", {}).get("keys", []))
    splits = shard_splits(manifest)
    rows_of = {s["file"]: int(s.get("rows", 0)) for s in manifest.get("shards", [])}
    lines = [
        "---", card_yaml(manifest, folder_name, extra_files).rstrip(), "---", "",
        f"# {folder_name}: action-annotated gameplay clips",
        "",
        f"{int(totals.get('clips', 0))} clips of {manifest.get('clip_frames')} frames at "
        f"{manifest.get('width')}x{manifest.get('height')}, {float(manifest.get('fps', 0)):g} fps "
        f"({_hours(float(totals.get('hours', 0.0)))} of curated video from "
        f"{_hours(float(totals.get('input_hours', 0.0)))} recorded), each frame labelled with the keyboard keys held, "
        "the mouse look and the camera pose: training data for interactive world models in the "
        "[Matrix-Game 2.0](https://github.com/SkyworkAI/Matrix-Game) layout, curated by playmill "
        f"(`{manifest.get('producer', 'playmill')}`, schema `{manifest.get('schema')}`).",
        "",
        "## Sources",
        "",
        "| source | episodes | rejected | recorded | curated | clips |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in manifest.get("sources", {}).items():
        lines.append(f"| {name} | {s.get('episodes', 0)} | {s.get('episodes_rejected', 0)} | "
                     f"{_hours(float(s.get('input_hours', 0.0)))} | {_hours(float(s.get('hours', 0.0)))} | "
                     f"{s.get('clips', 0)} |")
    split_meta = manifest.get("split") if isinstance(manifest.get("split"), Mapping) else {}
    rule = (f" Episodes are assigned by a hash of their {split_meta.get('by', 'episode')} "
            f"(val {split_meta.get('val')}, test {split_meta.get('test')}), so a held-out episode never has clips "
            "in train." if split_meta else " This dataset was curated without a held-out split: every clip is train.")
    lines += ["", "## Splits", "", "| split | shards | clips |", "|---|---|---|"]
    for sp, files in splits.items():
        lines.append(f"| {sp} | {len(files)} | {sum(rows_of.get(f, 0) for f in files)} |")
    lines += ["", "Each shard holds one split." + rule, ""]
    lines += ["## Columns (config `default`)", "", "| column | type | meaning |", "|---|---|---|"]
    codec = manifest.get("frame_codec", "h264")
    for name, typ, doc in _COLUMNS:
        if (name == "video" and codec != "h264") or (name == "frames" and codec != "jpeg") or \
                (name == "split" and not split_meta):
            continue
        lines.append(f"| {name} | {typ} | {doc} |")
    if manifest.get("consistency"):
        lines.append("| check_confident, check_yaw_r, check_pitch_r, check_cross_r, check_slope, check_fwd_agree, "
                     "check_side_agree | float32 | the action-label check of the clip (NaN: not measurable): share of "
                     "frames with a confident camera-motion estimate, Spearman of labelled vs visual yaw, pitch and "
                     "pitch-for-yaw, visual / labelled yaw, share of W/S and A/D frames moving the key's way |")
        lines.append("| check_lag, check_flags | int16, list<string> | the best-aligning shift of the labels, frames; "
                     "the clip's flags (yaw_sign, axes_swap, lag, scale, ...) |")
    lines += [
        "",
        f"Keys (K = {len(keys)}), in column order: {', '.join(keys)}.",
        "",
        f"`rejects` lists every dropped episode, clip and frame span with its stage and reason "
        f"({manifest.get('rejects', {}).get('rows', 0)} rows). `{MANIFEST_FILE}` has the shard list with sha256 "
        "checksums, the curation config and statistics.",
        "",
        "## Load",
        "",
        "```python",
        "from datasets import load_dataset",
        'clips = load_dataset("path/to/this/folder")                # DatasetDict: ' + ", ".join(splits),
        'rejects = load_dataset("path/to/this/folder", "rejects")["train"]',
        "",
        "import io, av                                               # a clip's frames",
        'frames = [f.to_ndarray(format="rgb24") for f in av.open(io.BytesIO(clips["train"][0]["video"])).decode(video=0)]',
        "```",
        "",
        "pandas and DuckDB read the shards directly (`pd.read_parquet(\"part-00000.parquet\")`). For training with "
        "playmill: `curation.ShardIterableDataset`. To train elsewhere:",
        "",
        "```bash",
        "playmill export fastvideo <this folder> out/fastvideo --model <base run>   # FastVideo's Matrix-Game 2.0 Parquet",
        "playmill export lerobot <this folder> out/lerobot                         # a LeRobot v3 dataset",
        "```",
        "",
    ]
    return "\n".join(lines)


def write_dataset_card(shards_dir: str | os.PathLike, manifest: Mapping[str, Any] | None = None) -> Path:
    """Write ``README.md`` (the dataset card) into ``shards_dir`` atomically; ``manifest``: the manifest about to
    be written (default: read ``manifest.json``). Returns the card's path."""
    d = Path(shards_dir)
    if manifest is None:
        manifest = json.loads((d / MANIFEST_FILE).read_text(encoding="utf-8"))
    extra = tuple(f for _, f, _ in EXTRA_CONFIGS if (d / f).is_file())
    text = card_text(manifest, d.name, extra)
    tmp = d / f".{CARD_FILE}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, d / CARD_FILE)
    return d / CARD_FILE


__all__ = ["CARD_FILE", "card_text", "card_yaml", "shard_splits", "write_dataset_card"]
