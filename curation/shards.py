"""Shard packing, the manifest, dataset statistics, verification and a text summary.

:func:`pack_shards` turns the per-episode work folders (see :mod:`curation.process`) into the dataset of
DESIGN.md section 4: ``part-NNNNN.parquet`` shards (clips in episode-id then start-frame order, each shard
written to a temporary name, fsynced and renamed), ``rejects.parquet`` and, last, ``manifest.json``. Packing
is deterministic: the same work folders always give byte-identical shards, which is what makes a killed
run resumable (the rerun packs again from the work folders; the old manifest is removed before the first
shard is replaced, so a manifest never describes shards it does not match).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from capture.atomic import write_json_atomic
from capture.errors import InputError
from capture.names import name_problem

from curation.schema import (
    MANIFEST_FILE, PART_PATTERN, REJECTS_FILE, REJECTS_SCHEMA, SHARDS_SCHEMA, clip_schema, is_clip_schema, list_column,
    normalise_rejects,
)

QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
RESERVOIR = 1_000_000


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------------
# statistics


class _Reservoir:
    """A seeded uniform sample of at most ``cap`` values (all of them when fewer), plus exact moments."""

    def __init__(self, cap: int = RESERVOIR, seed: int = 0) -> None:
        self.cap = cap
        self.rng = np.random.default_rng(seed)
        self.buf: list[np.ndarray] = []
        self.size = 0
        self.sample: np.ndarray | None = None
        self.count = 0
        self.sum = 0.0
        self.sumsq = 0.0
        self.min = np.inf
        self.max = -np.inf

    def add(self, v: np.ndarray) -> None:
        v = np.asarray(v, dtype=np.float64).ravel()
        v = v[np.isfinite(v)]
        if not len(v):
            return
        self.count += len(v)
        self.sum += float(v.sum())
        self.sumsq += float((v * v).sum())
        self.min = min(self.min, float(v.min()))
        self.max = max(self.max, float(v.max()))
        if self.sample is None:
            self.buf.append(v)
            self.size += len(v)
            if self.size > self.cap:
                allv = np.concatenate(self.buf)
                self.sample = self.rng.choice(allv, self.cap, replace=False)
                self.seen = len(allv)
                self.buf = []
            return
        # reservoir replacement for the new values (vectorised algorithm R)
        idx = self.seen + np.arange(1, len(v) + 1)
        j = (self.rng.random(len(v)) * idx).astype(np.int64)
        hit = j < self.cap
        self.sample[j[hit]] = v[hit]
        self.seen += len(v)

    def values(self) -> np.ndarray:
        if self.sample is not None:
            return self.sample
        return np.concatenate(self.buf) if self.buf else np.zeros(0)

    def summary(self) -> dict[str, Any]:
        if not self.count:
            return {"count": 0}
        mean = self.sum / self.count
        var = max(self.sumsq / self.count - mean * mean, 0.0)
        vals = self.values()
        return {
            "count": self.count, "min": self.min, "max": self.max, "mean": mean, "std": float(np.sqrt(var)),
            "quantiles": {str(q): float(x) for q, x in zip(QUANTILES, np.quantile(vals, QUANTILES))},
            "quantiles_exact": self.sample is None,
        }

    def histogram(self, bins: int = 41) -> dict[str, Any]:
        vals = self.values()
        if not len(vals):
            return {"edges": [], "counts": []}
        lim = float(np.max(np.abs(vals))) or 1.0
        counts, edges = np.histogram(vals, bins=bins, range=(-lim, lim))
        return {"edges": edges.tolist(), "counts": counts.tolist(), "sampled": self.sample is not None}


@dataclass
class DatasetStats:
    """Running statistics of the clip rows packed so far (per-frame values of every clip)."""

    keys: tuple[str, ...]
    frames: int = 0
    key_counts: np.ndarray = field(default=None)  # type: ignore[assignment]
    collisions: int = 0
    d_pitch: _Reservoir = field(default_factory=lambda: _Reservoir(seed=1))
    d_yaw: _Reservoir = field(default_factory=lambda: _Reservoir(seed=2))
    speed: _Reservoir = field(default_factory=lambda: _Reservoir(seed=3))
    clips_by_source: dict[str, int] = field(default_factory=dict)
    frames_by_source: dict[str, int] = field(default_factory=dict)
    seconds_by_source: dict[str, float] = field(default_factory=dict)
    clips_by_scene: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.key_counts is None:
            self.key_counts = np.zeros(len(self.keys), dtype=np.int64)

    def add(self, table) -> None:
        """Add the clips of a shard-schema table."""
        k = len(self.keys)
        kb = list_column(table, "keyboard", k, np.int64)
        self.frames += len(kb)
        self.key_counts += kb.sum(axis=0)
        mouse = list_column(table, "mouse", 2, np.float64)
        self.d_pitch.add(mouse[:, 0])
        self.d_yaw.add(mouse[:, 1])
        self.speed.add(list_column(table, "speed"))
        self.collisions += int(list_column(table, "collision").sum())
        for src, scene, nf, fps in zip(table.column("source").to_pylist(), table.column("scene").to_pylist(),
                                       table.column("num_frames").to_pylist(), table.column("fps").to_pylist()):
            self.clips_by_source[src] = self.clips_by_source.get(src, 0) + 1
            self.frames_by_source[src] = self.frames_by_source.get(src, 0) + int(nf)
            self.seconds_by_source[src] = self.seconds_by_source.get(src, 0.0) + nf / fps
            key = f"{src}/{scene}"
            self.clips_by_scene[key] = self.clips_by_scene.get(key, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        f = max(self.frames, 1)
        return {
            "frames": self.frames,
            "keyboard": {"press_rate": {k: float(c) / f for k, c in zip(self.keys, self.key_counts.tolist())},
                         "pressed_frames": dict(zip(self.keys, self.key_counts.tolist()))},
            "mouse": {"d_pitch": self.d_pitch.summary(), "d_yaw": self.d_yaw.summary(),
                      "histograms": {"d_pitch": self.d_pitch.histogram(), "d_yaw": self.d_yaw.histogram()}},
            "speed": {**self.speed.summary(), "histogram": self.speed.histogram()},
            "collision_rate": self.collisions / f,
            "hours_by_source": {s: v / 3600.0 for s, v in sorted(self.seconds_by_source.items())},
            "clips_by_source": dict(sorted(self.clips_by_source.items())),
            "clips_by_scene": dict(sorted(self.clips_by_scene.items())),
        }


# --------------------------------------------------------------------------------------------------------
# packing


@dataclass
class PackResult:
    """The manifest written and the shard paths."""

    manifest: dict[str, Any]
    shards: list[Path]


def pack_shards(
    out_dir: Path,
    clip_files: Sequence[Path],
    reject_files: Sequence[Path],
    *,
    keys: Sequence[str],
    frame_codec: str,
    shard_max_rows: int,
    shard_max_bytes: int,
    row_group_rows: int,
    manifest_extra: dict[str, Any],
    splits: Sequence[str] | None = None,
    extra_fields: Sequence[Any] = (),
) -> PackResult:
    """Pack per-episode clip files (in the given order) into shards, write rejects.parquet, then the manifest.

    ``manifest_extra`` is merged into the manifest (clip_frames, fps, height, width, config, sources ...).
    ``splits``: the split of each clip file; a shard never mixes splits (a new shard starts where the split
    changes, so order the files by split) and its manifest entry names its ``split``. ``extra_fields``: the
    columns the stages added after DESIGN.md's (:func:`curation.schema.clip_schema`).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
    for p in out_dir.glob(".*.tmp"):
        p.unlink(missing_ok=True)
    schema = clip_schema(len(keys), frame_codec, extra_fields)
    stats = DatasetStats(tuple(keys))
    shards: list[dict[str, Any]] = []
    paths: list[Path] = []
    state: dict[str, Any] = {"writer": None, "rows": 0, "bytes": 0, "buf": [], "buf_rows": 0, "split": None}

    def flush() -> None:
        if state["buf"]:
            state["writer"].write_table(pa.concat_tables(state["buf"]), row_group_size=row_group_rows)
            state["buf"], state["buf_rows"] = [], 0

    def close_part() -> None:
        if state["writer"] is None:
            return
        flush()
        state["writer"].close()
        name = PART_PATTERN.format(len(shards))
        tmp, final = out_dir / f".{name}.tmp", out_dir / name
        _fsync(tmp)
        os.replace(tmp, final)
        entry = {"file": name, "rows": state["rows"], "bytes": final.stat().st_size, "sha256": _sha256(final)}
        if state["split"] is not None:
            entry["split"] = state["split"]
        shards.append(entry)
        paths.append(final)
        state.update(writer=None, rows=0, bytes=0)

    for fi, cf in enumerate(clip_files):
        split = splits[fi] if splits is not None else None
        if split != state["split"] and state["writer"] is not None:
            close_part()
        state["split"] = split
        pf = pq.ParquetFile(cf)
        for rg in range(pf.num_row_groups):
            t = pf.read_row_group(rg)
            if t.schema != schema:
                t = t.cast(schema)
            for i in range(t.num_rows):
                row = t.slice(i, 1)
                if state["writer"] is None:
                    name = PART_PATTERN.format(len(shards))
                    state["writer"] = pq.ParquetWriter(out_dir / f".{name}.tmp", schema, compression="zstd")
                state["buf"].append(row)
                state["buf_rows"] += 1
                state["rows"] += 1
                state["bytes"] += row.nbytes
                stats.add(row)
                if state["buf_rows"] >= row_group_rows:
                    flush()
                if state["rows"] >= shard_max_rows or state["bytes"] >= shard_max_bytes:
                    close_part()
    close_part()
    k = len(shards)
    for p in sorted(out_dir.glob("part-*.parquet")):  # shards of an earlier, larger run
        try:
            idx = int(p.stem.split("-")[1])
        except (IndexError, ValueError):
            continue
        if idx >= k:
            p.unlink()

    rej_tables = [pq.read_table(p) for p in reject_files if p.exists()]
    rej = pa.concat_tables([normalise_rejects(t) for t in rej_tables]) if rej_tables else REJECTS_SCHEMA.empty_table()
    if rej.num_rows:
        rej = rej.sort_by([("episode_id", "ascending"), ("start_frame", "ascending"), ("stage", "ascending")])
    tmp = out_dir / f".{REJECTS_FILE}.tmp"
    pq.write_table(rej, tmp)
    _fsync(tmp)
    os.replace(tmp, out_dir / REJECTS_FILE)
    by_stage: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    frames_by_stage: dict[str, int] = {}
    for s, kd, nf in zip(rej.column("stage").to_pylist(), rej.column("kind").to_pylist(),
                         rej.column("frames").to_pylist()):
        by_stage[s] = by_stage.get(s, 0) + 1
        by_kind[kd] = by_kind.get(kd, 0) + 1
        frames_by_stage[s] = frames_by_stage.get(s, 0) + int(nf or 0)

    st = stats.to_dict()
    manifest = {
        "schema": SHARDS_SCHEMA,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        **manifest_extra,
        "frame_codec": frame_codec,
        "action_space": {"keys": list(keys)},
        "shards": shards,
        "rejects": {"file": REJECTS_FILE, "rows": rej.num_rows, "sha256": _sha256(out_dir / REJECTS_FILE),
                    "by_stage": dict(sorted(by_stage.items())), "by_kind": dict(sorted(by_kind.items())),
                    "frames_by_stage": dict(sorted(frames_by_stage.items()))},
        "totals": {
            "clips": sum(s["rows"] for s in shards), "frames": stats.frames,
            "hours": sum(st["hours_by_source"].values()), "bytes": sum(s["bytes"] for s in shards),
            "shards": len(shards), **manifest_extra.get("totals", {}),
        },
        "stats": st,
    }
    for name, v in manifest_extra.get("sources", {}).items():
        v["clips"] = stats.clips_by_source.get(name, 0)
        v["hours"] = stats.seconds_by_source.get(name, 0.0) / 3600.0
    from curation.card import write_dataset_card

    write_dataset_card(out_dir, manifest)  # README.md: what `datasets.load_dataset(out_dir)` reads
    write_json_atomic(out_dir / MANIFEST_FILE, manifest)
    return PackResult(manifest, paths)


# --------------------------------------------------------------------------------------------------------
# reading the manifest, verifying, summarising


class ShardsError(InputError):
    """A shards folder that cannot be used; the message names the folder (or file) and what is wrong."""


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def manifest_problems(m: Any) -> list[str]:
    """Every structural problem of a parsed manifest, each naming its field (empty: usable). Shard file
    names must be safe names (:func:`capture.names.check_name`): a manifest cannot point outside its folder."""
    if not isinstance(m, dict):
        return [f"must be a JSON object, got {type(m).__name__}"]
    if m.get("schema") != SHARDS_SCHEMA:
        return [f"schema is {m.get('schema')!r}, expected {SHARDS_SCHEMA!r}"]
    out = [f"missing field {k!r}" for k in ("shards", "action_space", "clip_frames", "fps", "height", "width",
                                           "frame_codec") if k not in m]
    if out:
        return out
    keys = m["action_space"].get("keys") if isinstance(m["action_space"], dict) else None
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k for k in keys):
        out.append(f"action_space: expected {{\"keys\": [key names]}}, got {str(m['action_space'])[:80]}")
    for k in ("clip_frames", "height", "width"):
        if not _is_count(m[k]) or m[k] == 0:
            out.append(f"{k}: expected a positive integer, got {m[k]!r}")
    if isinstance(m["fps"], bool) or not isinstance(m["fps"], (int, float)) or not 0 < m["fps"] < 1e4:
        out.append(f"fps: expected a positive number, got {m['fps']!r}")
    if m["frame_codec"] not in ("h264", "jpeg"):
        out.append(f"frame_codec: expected h264 or jpeg, got {m['frame_codec']!r}")
    if not isinstance(m["shards"], list):
        return out + [f"shards: expected a list of {{file, rows, bytes, sha256}}, got {type(m['shards']).__name__}"]
    seen: set[str] = set()
    for i, s in enumerate(m["shards"]):
        where = f"shards[{i}]"
        if not isinstance(s, dict):
            out.append(f"{where}: expected {{file, rows, bytes, sha256}}, got {str(s)[:60]}")
            continue
        why = name_problem(s.get("file"))
        if why is not None:
            out.append(f"{where}.file: {str(s.get('file'))[:80]!r} {why} (shards are files of the manifest's folder)")
        elif s["file"] in seen:
            out.append(f"{where}.file: {s['file']!r} is listed twice")
        else:
            seen.add(s["file"])
        for k in ("rows", "bytes"):
            if not _is_count(s.get(k)):
                out.append(f"{where}.{k}: expected an integer >= 0, got {s.get(k)!r}")
        if not (isinstance(s.get("sha256"), str) and len(s["sha256"]) == 64
                and all(c in "0123456789abcdef" for c in s["sha256"])):
            out.append(f"{where}.sha256: expected 64 lower-case hex digits, got {str(s.get('sha256'))[:80]!r}")
    rj = m.get("rejects", {})
    if not isinstance(rj, dict) or name_problem(rj.get("file", REJECTS_FILE)) is not None:
        out.append(f"rejects: expected {{file: a file name of the folder, rows, sha256}}, got {str(rj)[:80]}")
    return out


def read_manifest(shards_dir: str | os.PathLike) -> dict[str, Any]:
    """Parse and check ``manifest.json`` of a shards folder; :class:`ShardsError` naming the file and every
    problem when it is missing, unreadable, of another schema or malformed (:func:`manifest_problems`)."""
    d = Path(shards_dir)
    p = d / MANIFEST_FILE
    if not p.is_file():
        raise ShardsError(f"{d}: no {MANIFEST_FILE} (not a shards folder, or curation has not finished; "
                          "rerun `playmill curate` to complete it)")
    try:
        m = json.loads(p.read_bytes().decode("utf-8-sig"))
    except (OSError, ValueError, RecursionError) as e:
        raise ShardsError(f"{p}: unreadable manifest: {e}") from None
    problems = manifest_problems(m)
    if problems:
        raise ShardsError(f"{p}: " + "; ".join(problems[:10]) + (f"; ... {len(problems) - 10} more"
                                                                  if len(problems) > 10 else ""))
    return m


_VERIFY = [True]  # the process's default for readers opened with verify=None (see shard_verification)


def verify_by_default() -> bool:
    """Whether a reader opened with ``verify=None`` checks each shard's size and sha256 against the manifest: yes,
    unless it runs inside ``shard_verification(False)`` (``verify_shards: false`` in pipeline.yaml,
    ``--no-verify`` on the command line)."""
    return _VERIFY[-1]


@contextlib.contextmanager
def shard_verification(enabled: bool) -> Iterator[None]:
    """Readers opened inside this block (``verify=None``) check each shard's size and sha256 (``enabled``) or
    only its rows. The stage runner applies ``verify_shards`` of pipeline.yaml with it."""
    _VERIFY.append(bool(enabled))
    try:
        yield
    finally:
        _VERIFY.pop()


_VERIFIED: dict[tuple, str] = {}  # (path, size, mtime_ns, inode) -> sha256 verified in this process


def shard_problems(shards_dir: Path, entry: Mapping[str, Any], *, check_sha: bool = True,
                   cached: bool = True) -> list[str]:
    """What is wrong with one shard of a manifest (empty: it is the file the manifest describes): missing, a
    different byte size (truncated?), a different sha256, not readable as Parquet, a different row count. Each
    message starts with the file. ``check_sha=False`` skips the size and sha256 checks. With ``cached``, a file
    verified by this process is not hashed again while its size, modification time and inode are unchanged."""
    import pyarrow.parquet as pq

    p = Path(shards_dir) / entry["file"]
    if not p.is_file():
        return [f"{p}: listed in the manifest but missing"]
    st = p.stat()
    out = []
    if check_sha and st.st_size != entry["bytes"]:
        out.append(f"{p}: {st.st_size} bytes, the manifest says {entry['bytes']} (truncated or replaced?)")
    if check_sha and not out:
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
        sha = (_VERIFIED.get(key) if cached else None) or _sha256(p)
        if sha != entry["sha256"]:
            out.append(f"{p}: sha256 {sha} does not match the manifest's {entry['sha256']} (the file changed or is "
                       "corrupt)")
        else:
            _VERIFIED[key] = sha
    try:
        rows = pq.ParquetFile(p).metadata.num_rows
    except Exception as e:
        return out + [f"{p}: not a readable Parquet file: {e}"]
    if rows != entry["rows"]:
        out.append(f"{p}: {rows} rows, the manifest says {entry['rows']}")
    return out


def verify_shards(shards_dir: str | os.PathLike) -> list[str]:
    """Every problem of a shards folder (empty: all good): each shard's existence, byte size, sha256, row
    count and Arrow schema against the manifest; unlisted part files; the rejects file; the totals; clip ids
    unique across shards."""
    import pyarrow.parquet as pq

    d = Path(shards_dir)
    try:
        m = read_manifest(d)
    except ShardsError as e:
        return [str(e)]
    problems: list[str] = []
    keys = m["action_space"].get("keys", [])
    listed = set()
    ids: set[str] = set()
    total = 0
    for s in m["shards"]:
        p = d / s["file"]
        listed.add(s["file"])
        found = shard_problems(d, s, cached=False)
        problems += found
        if any("missing" in f or "not a readable Parquet" in f for f in found):
            continue
        try:
            pf = pq.ParquetFile(p)
            if not is_clip_schema(pf.schema_arrow, len(keys), m["frame_codec"]):
                problems.append(f"{p}: Arrow schema differs from {SHARDS_SCHEMA} with {len(keys)} keys and "
                                f"frame_codec {m['frame_codec']}:\n{pf.schema_arrow}")
            total += pf.metadata.num_rows
            clip_ids = pq.read_table(p, columns=["clip_id"]).column("clip_id").to_pylist()
        except Exception as e:  # corrupt pages behind a readable footer
            problems.append(f"{p}: unreadable Parquet data: {e}")
            continue
        for cid in clip_ids:
            if cid in ids:
                problems.append(f"{p}: clip {cid} appears more than once")
            ids.add(cid)
    for p in sorted(d.glob("part-*.parquet")):
        if p.name not in listed:
            problems.append(f"{p}: a shard file that the manifest does not list")
    if m.get("totals", {}).get("clips") != total:
        problems.append(f"{d / MANIFEST_FILE}: totals.clips is {m.get('totals', {}).get('clips')}, the shards hold {total}")
    rj = m.get("rejects", {})
    rp = d / rj.get("file", REJECTS_FILE)
    if not rp.is_file():
        problems.append(f"{rp}: missing")
    elif rj.get("sha256") and _sha256(rp) != rj["sha256"]:
        problems.append(f"{rp}: sha256 does not match the manifest")
    else:
        try:
            if pq.ParquetFile(rp).metadata.num_rows != rj.get("rows"):
                problems.append(f"{rp}: row count does not match the manifest")
        except Exception as e:
            problems.append(f"{rp}: not a readable Parquet file: {e}")
    return problems


#: The stages whose dropped clips mean bad data (not a cut by design such as the frames after the last clip).
BAD_DATA_STAGES: tuple[str, ...] = ("pose", "decode", "validate")


def bad_data_rejects(shards_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of ``rejects.parquet`` for episodes rejected whole and clips dropped for bad data
    (:data:`BAD_DATA_STAGES`): ``episode_id, kind, start_frame, end_frame, stage, reason``; [] without the file."""
    import pyarrow.parquet as pq

    p = Path(shards_dir) / REJECTS_FILE
    if not p.is_file():
        return []
    rows = pq.read_table(p, columns=["episode_id", "kind", "start_frame", "end_frame", "stage", "reason"]).to_pylist()
    return [r for r in rows if r["kind"] == "episode" or (r["kind"] == "clip" and r["stage"] in BAD_DATA_STAGES)]


def _fmt_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])


def _reject_rows(rj: dict[str, Any]) -> list[tuple[str, int, Any]]:
    """``(stage, records, source frames removed)`` per reject stage (frames "?" for manifests written before
    they were counted)."""
    frames = rj.get("frames_by_stage")
    return [(s, n, frames.get(s, 0) if frames is not None else "?") for s, n in sorted(rj.get("by_stage", {}).items())]


def inspect_shards(shards_dir: str | os.PathLike) -> str:
    """A readable summary of a shards folder: format, totals, per-source hours and clips, shards, rejects
    by stage, key press rates and mouse/speed statistics."""
    d = Path(shards_dir)
    m = read_manifest(d)
    t = m.get("totals", {})
    st = m.get("stats", {})
    out = [
        f"{d}  ({m['schema']})",
        f"clips of {m['clip_frames']} frames at {m['fps']:g} fps, {m['width']}x{m['height']}, "
        f"frame codec {m['frame_codec']}, keys {m['action_space']['keys']}",
        f"totals: {t.get('clips', 0)} clips, {t.get('frames', 0)} frames, {t.get('hours', 0.0):.4f} h, "
        f"{t.get('bytes', 0) / 1e6:.2f} MB in {len(m['shards'])} shard(s); episodes {t.get('episodes', '?')} "
        f"({t.get('episodes_rejected', 0)} rejected)",
        "",
        _fmt_table([(s, v.get("episodes", 0), v.get("clips", 0), f"{v.get('input_hours', 0.0):.4f}",
                     f"{v.get('hours', 0.0):.4f}") for s, v in sorted(m.get("sources", {}).items())],
                   ["source", "episodes", "clips", "input h", "clip h"]),
        "",
        _fmt_table([(s["file"], s["rows"], f"{s['bytes'] / 1e6:.2f}", s["sha256"][:16]) for s in m["shards"]],
                   ["shard", "rows", "MB", "sha256"]),
        "",
        _fmt_table(_reject_rows(m.get("rejects", {})), ["reject stage", "rows", "frames"]),
    ]
    idle = t.get("idle_frames_kept")
    if idle:
        out.append(f"idle frames kept (identical frames while nothing was pressed: a player standing still): {idle}")
    kb = st.get("keyboard", {}).get("press_rate", {})
    if kb:
        out += ["", _fmt_table([(k, f"{v:.3f}") for k, v in kb.items()], ["key", "press rate"])]
    feats = []
    for name, s in (("d_pitch (deg)", st.get("mouse", {}).get("d_pitch", {})),
                    ("d_yaw (deg)", st.get("mouse", {}).get("d_yaw", {})), ("speed (cm/s)", st.get("speed", {}))):
        if s.get("count"):
            q = s.get("quantiles", {})
            feats.append((name, f"{s['min']:.4g}", f"{s['max']:.4g}", f"{s['mean']:.4g}", f"{s['std']:.4g}",
                          f"{q.get('0.5', float('nan')):.4g}"))
    if feats:
        out += ["", _fmt_table(feats, ["feature", "min", "max", "mean", "std", "median"])]
    return "\n".join(out)


def iter_shard_tables(shards_dir: str | os.PathLike, columns: Iterable[str] | None = None):
    """Yield each shard of the manifest as a pyarrow Table (optionally only ``columns``)."""
    import pyarrow.parquet as pq

    d = Path(shards_dir)
    m = read_manifest(d)
    for s in m["shards"]:
        yield pq.read_table(d / s["file"], columns=list(columns) if columns else None)
