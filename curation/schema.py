"""The shard contract "playmill.shards/1" (DESIGN.md section 4): Arrow schemas of clip rows and rejects.

One row per clip::

    clip_id string, episode_id string, source string, scene string, start_frame int64, num_frames int32,
    fps float64, height int32, width int32,
    video binary (the clip as an H.264 mp4)           -- frame_codec "h264"
      or frames list<binary> (one JPEG per frame)     -- frame_codec "jpeg"
    keyboard list<fixed_size_list<uint8, K>>, mouse list<fixed_size_list<float32, 2>> (d_pitch, d_yaw, degrees),
    pose list<fixed_size_list<float64, 7>> (x, y, z cm, qw, qx, qy, qz), speed list<float32> (cm/s),
    collision list<bool>

Then the columns the enabled stages add (:meth:`curation.stage.Stage.clip_fields`, in pipeline order); by
default (issue 13) the held-out split's ``split`` string (train | val | test, :mod:`curation.split`) and the
action-label check's ``check_confident`` (share of frames the motion estimator is confident on), ``check_yaw_r``,
``check_pitch_r``, ``check_cross_r`` (Spearman: labelled against visual yaw, pitch, labelled pitch against visual
yaw), ``check_slope`` (visual / labelled yaw), ``check_lag`` int16 (frames), ``check_fwd_agree``,
``check_side_agree`` (float32, NaN when not measurable) and ``check_flags`` list<string>
(:mod:`curation.consistency`). With those stages off (``curate.split.enabled``, ``curate.consistency.enabled``)
the rows have exactly the columns above; readers accept shards with or without added columns.

``start_frame`` is the source (actions.csv) frame number of the clip's first frame; the clip's frames are
consecutive frames of the curated sequence (after dedup and resampling) played at ``fps``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

SHARDS_SCHEMA = "playmill.shards/1"
MANIFEST_FILE = "manifest.json"
REJECTS_FILE = "rejects.parquet"
PART_PATTERN = "part-{:05d}.parquet"

#: Reject stages, in pipeline order.
STAGES: tuple[str, ...] = ("validate", "consistency", "decode", "dedup", "velocity", "resample", "clip", "pose",
                           "encode")

def clip_schema(num_keys: int, frame_codec: str, extra: Sequence[pa.Field] = ()) -> pa.Schema:
    """The Arrow schema of a shard for ``num_keys`` keys and ``frame_codec`` (``h264`` or ``jpeg``), with the
    ``extra`` columns stages add after DESIGN.md's."""
    media = pa.field("video", pa.binary()) if frame_codec == "h264" else pa.field("frames", pa.list_(pa.binary()))
    return pa.schema([
        pa.field("clip_id", pa.string()),
        pa.field("episode_id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("scene", pa.string()),
        pa.field("start_frame", pa.int64()),
        pa.field("num_frames", pa.int32()),
        pa.field("fps", pa.float64()),
        pa.field("height", pa.int32()),
        pa.field("width", pa.int32()),
        media,
        pa.field("keyboard", pa.list_(pa.list_(pa.uint8(), num_keys))),
        pa.field("mouse", pa.list_(pa.list_(pa.float32(), 2))),
        pa.field("pose", pa.list_(pa.list_(pa.float64(), 7))),
        pa.field("speed", pa.list_(pa.float32())),
        pa.field("collision", pa.list_(pa.bool_())),
        *extra,
    ])


def is_clip_schema(schema: pa.Schema, num_keys: int, frame_codec: str) -> bool:
    """True when ``schema`` starts with the shard columns of :func:`clip_schema` (columns added by stages after
    them are allowed)."""
    base = clip_schema(num_keys, frame_codec)
    return len(schema) >= len(base) and all(schema.field(i).equals(base.field(i)) for i in range(len(base)))


REJECTS_SCHEMA = pa.schema([
    pa.field("episode_id", pa.string()),
    pa.field("kind", pa.string()),  # episode | clip | span
    pa.field("start_frame", pa.int64()),  # source frame numbers, inclusive; -1 when unknown
    pa.field("end_frame", pa.int64()),
    pa.field("stage", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("frames", pa.int64()),  # source frames the record removed (resampling: the skipped ones only)
])


def normalise_rejects(table: pa.Table) -> pa.Table:
    """A rejects table in :data:`REJECTS_SCHEMA`: tables written before the ``frames`` column existed get it
    (every frame of the span, as they counted them)."""
    if "frames" not in table.column_names:
        s = np.asarray(table.column("start_frame").to_numpy(zero_copy_only=False), dtype=np.int64)
        e = np.asarray(table.column("end_frame").to_numpy(zero_copy_only=False), dtype=np.int64)
        n = np.where((s >= 0) & (e >= s), e - s + 1, 0)
        table = table.append_column("frames", pa.array(n, pa.int64()))
    return table.select(REJECTS_SCHEMA.names).cast(REJECTS_SCHEMA)


def _nested(values: np.ndarray, width: int | None, typ: pa.DataType) -> pa.Array:
    """One list<...> cell holding ``values`` (rows of ``width`` when given) as a length-1 array."""
    flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=typ)
    inner = pa.FixedSizeListArray.from_arrays(flat, width) if width is not None else flat
    return pa.ListArray.from_arrays(pa.array([0, len(values)], pa.int32()), inner)


def clip_table(
    *, clip_id: str, episode_id: str, source: str, scene: str, start_frame: int, fps: float, height: int,
    width: int, frame_codec: str, media: bytes | Sequence[bytes], keyboard: np.ndarray, mouse: np.ndarray,
    pose: np.ndarray, speed: np.ndarray, collision: np.ndarray, extra: Sequence[pa.Field] = (),
    columns: dict | None = None,
) -> pa.Table:
    """A one-row table in :func:`clip_schema`. ``media``: mp4 bytes (h264) or a list of JPEG bytes; ``columns``:
    the values of the ``extra`` columns (a missing one is null)."""
    n, k = keyboard.shape
    schema = clip_schema(k, frame_codec, extra)
    media_arr = (pa.array([bytes(media)], pa.binary()) if frame_codec == "h264"
                 else pa.array([list(media)], pa.list_(pa.binary())))
    cols = [
        pa.array([clip_id], pa.string()), pa.array([episode_id], pa.string()), pa.array([source], pa.string()),
        pa.array([scene], pa.string()), pa.array([start_frame], pa.int64()), pa.array([n], pa.int32()),
        pa.array([fps], pa.float64()), pa.array([height], pa.int32()), pa.array([width], pa.int32()),
        media_arr,
        _nested(keyboard.astype(np.uint8), k, pa.uint8()),
        _nested(mouse.astype(np.float32), 2, pa.float32()),
        _nested(pose.astype(np.float64), 7, pa.float64()),
        _nested(speed.astype(np.float32), None, pa.float32()),
        _nested(collision.astype(bool), None, pa.bool_()),
    ]
    values = columns or {}
    cols += [pa.array([values.get(f.name)], f.type) for f in extra]
    return pa.Table.from_arrays(cols, schema=schema)


def rejects_table(rows: Sequence[dict]) -> pa.Table:
    """Reject rows (dicts with the :data:`REJECTS_SCHEMA` fields) as a table."""
    return pa.Table.from_pylist([dict(r) for r in rows], schema=REJECTS_SCHEMA)


def list_column(table: pa.Table, name: str, width: int | None = None, dtype=None) -> np.ndarray:
    """A list (of fixed-size lists) column of a table as one flat numpy array ``[rows*T(, width)]``."""
    col = table.column(name).combine_chunks()
    vals = col.flatten()
    if width is not None:
        vals = vals.flatten()
    arr = vals.to_numpy(zero_copy_only=False)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    return arr.reshape(-1, width) if width is not None else arr
