"""The curation config: one dataclass per stage, the ``curate:`` section of pipeline.yaml.

Every field has a default, a unit in its comment and is checked by :meth:`CurateConfig.from_dict`, which
reports every bad key at once with the allowed values (the same message style as ``playmill.config``).
:meth:`CurateConfig.to_dict` is the form stored in manifest.json; :meth:`CurateConfig.fingerprint` (sha256 of
the parts that change what is written) decides whether per-episode work of an earlier run can be reused.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

FRAME_CODECS: tuple[str, ...] = ("h264", "jpeg")
RESAMPLE_MODES: tuple[str, ...] = ("none", "fps")
DEDUP_PLANES: tuple[str, ...] = ("gray", "yuv")
ENGINES: tuple[str, ...] = ("local", "ray")
X264_PRESETS: tuple[str, ...] = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
)


@dataclass(frozen=True)
class DedupConfig:
    """Redundant-frame filter (an mpdecimate-like test against the LAST KEPT frame).

    Frames are compared downscaled (area filter) to at most ``compare_width`` pixels wide, as luma only
    (``planes: gray``) or luma and chroma (``planes: yuv``, the default: like mpdecimate, which compares
    every plane, it sees changes of colour at equal brightness), in ``block`` x ``block`` blocks. A block's
    difference is its mean absolute difference per pixel (0-255 levels; mpdecimate's SAD thresholds divided by
    the pixels of a block), the largest over the planes. A frame *differs* from the last kept frame when any
    block is above ``hi`` or more than ``frac`` of the blocks are above ``lo``; otherwise it is redundant and
    dropped (its actions fold into the next kept frame). ``max_drop_s``: after this many seconds of
    consecutive drops a frame is kept anyway (None: no limit). Defaults are tuned by ``bench/dedup.py``.
    """

    enabled: bool = True
    planes: str = "yuv"  # gray | yuv
    compare_width: int = 160  # px
    block: int = 4  # px, at the compare resolution
    hi: float = 5.0  # levels, mean |diff| in one block
    lo: float = 2.0  # levels
    frac: float = 0.33  # fraction of blocks
    max_drop_s: float | None = None  # s


@dataclass(frozen=True)
class VelocityConfig:
    """Velocity validation on the ``speed`` column (signed forward ground speed, cm/s).

    A frame is *still* when ``|speed| < min_speed_cm_s`` and (with ``turning_is_motion``) the mouse moved less
    than ``min_turn_deg`` that frame; it is *backwards* when ``speed <= -min_speed_cm_s``. Runs of still frames
    longer than ``max_still_s`` and runs of backwards frames longer than ``max_backward_s`` are excluded
    (None: tolerated at any length); shorter runs are kept. Excluded spans split the episode into segments.
    """

    enabled: bool = True
    min_speed_cm_s: float = 5.0  # cm/s
    max_still_s: float | None = 2.0  # s
    max_backward_s: float | None = 2.0  # s
    turning_is_motion: bool = True
    min_turn_deg: float = 0.05  # degrees per frame (|d_pitch| + |d_yaw|)


@dataclass(frozen=True)
class ResampleConfig:
    """Resampling to the dataset frame rate ``fps`` (frames/s), by timestamps.

    ``mode: fps`` picks, for each point of a ``1/fps`` grid, the nearest available frame (after dedup) and
    folds the actions of the skipped frames into the kept ones; ``mode: none`` keeps every frame and requires
    episodes recorded at ``fps``. ``motion_sources`` (e.g. ``[sekai]``) are resampled by motion instead: the
    step is chosen so that their median per-frame camera displacement matches ``motion_target_cm`` (cm per
    output frame; ``null``: the median of the other sources' episodes at ``fps``, measured in the same run),
    clamped to ``[1, max_motion_step]`` source frames. Their clips are labelled with the dataset ``fps``.
    """

    mode: str = "fps"
    fps: float = 25.0  # frames/s
    motion_sources: tuple[str, ...] = ()
    motion_target_cm: float | None = None  # cm per output frame
    max_motion_step: float = 8.0  # source frames


@dataclass(frozen=True)
class ClipConfig:
    """Resize + centre crop to ``height`` x ``width`` (aspect kept, cv2.INTER_AREA when shrinking) and cut
    ``frames``-frame windows every ``stride`` output frames (``frames % 4 == 1``, the causal VAE's rule)."""

    frames: int = 57
    stride: int = 57  # output frames between window starts (== frames: no overlap)
    height: int = 352  # px
    width: int = 640  # px


@dataclass(frozen=True)
class OutputConfig:
    """Shard writing. ``frame_codec``: ``h264`` (the clip as an mp4 in column ``video``) or ``jpeg`` (one
    JPEG per frame in column ``frames``). ``crf``/``preset``: x264 settings; ``jpeg_quality`` 1-100.
    A shard is closed when it reaches ``shard_max_rows`` clips or ``shard_max_bytes`` bytes of clip data;
    ``row_group_rows`` clips per Parquet row group (the reader's unit of random access).
    ``keep_work``: keep the per-episode work folder (``.work/``) after the manifest is written, so a later
    run with more episodes only processes the new ones."""

    frame_codec: str = "h264"
    crf: int = 18
    preset: str = "veryfast"
    jpeg_quality: int = 90
    shard_max_rows: int = 1000
    shard_max_bytes: int = 500_000_000
    row_group_rows: int = 8
    keep_work: bool = True


@dataclass(frozen=True)
class CurateConfig:
    """The whole curation config. ``action_keys``: the dataset's key list (None: the first episode's, in
    id order); episodes whose keys are a subset are remapped, others rejected. ``check_video``: probe and
    hash each source video before decoding (catches truncated files up front)."""

    dedup: DedupConfig = field(default_factory=DedupConfig)
    velocity: VelocityConfig = field(default_factory=VelocityConfig)
    resample: ResampleConfig = field(default_factory=ResampleConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    action_keys: tuple[str, ...] | None = None
    check_video: bool = True

    # -- conversions
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "CurateConfig":
        """Parse and check a ``curate:`` mapping; ``ValueError`` listing every bad key (``curate.<key>: ...``)."""
        problems: list[str] = []
        d = dict(d or {})
        top = {f.name for f in fields(cls)}
        for k in d:
            if k not in top:
                problems.append(f"curate.{k}: unknown key; allowed keys here: {', '.join(sorted(top))}")
        parts: dict[str, Any] = {}
        for name, sub in (("dedup", DedupConfig), ("velocity", VelocityConfig), ("resample", ResampleConfig),
                          ("clip", ClipConfig), ("output", OutputConfig)):
            parts[name] = _parse_sub(sub, d.get(name), f"curate.{name}", problems)
        keys = d.get("action_keys")
        if keys is not None:
            if not isinstance(keys, (list, tuple)) or not keys or not all(isinstance(k, str) for k in keys):
                problems.append(f"curate.action_keys: {keys!r} is not allowed; expected a list of key names or null")
                keys = None
            else:
                keys = tuple(keys)
        check_video = d.get("check_video", True)
        if not isinstance(check_video, bool):
            problems.append(f"curate.check_video: {check_video!r} is not allowed; expected true or false")
            check_video = True
        cfg = None
        if not problems:
            cfg = cls(action_keys=keys, check_video=check_video, **parts)
            problems += cfg.problems()
        if problems:
            raise ValueError("\n".join(problems))
        assert cfg is not None
        return cfg

    def problems(self) -> list[str]:
        """Every inconsistent value, as ``curate.<key>: ...`` messages (empty when valid)."""
        p: list[str] = []

        def need(ok: bool, key: str, value: Any, expected: str) -> None:
            if not ok:
                p.append(f"curate.{key}: {value!r} is not allowed; expected {expected}")

        dd, v, r, c, o = self.dedup, self.velocity, self.resample, self.clip, self.output
        need(dd.planes in DEDUP_PLANES, "dedup.planes", dd.planes, "one of " + ", ".join(DEDUP_PLANES))
        need(dd.compare_width >= 8, "dedup.compare_width", dd.compare_width, "an integer >= 8 (pixels)")
        need(1 <= dd.block <= 64, "dedup.block", dd.block, "an integer in [1, 64] (pixels)")
        need(0 <= dd.lo <= dd.hi, "dedup.lo", dd.lo, f"a number in [0, hi={dd.hi}] (grey levels)")
        need(dd.hi >= 0, "dedup.hi", dd.hi, "a number >= 0 (grey levels)")
        need(0 <= dd.frac <= 1, "dedup.frac", dd.frac, "a number in [0, 1]")
        need(dd.max_drop_s is None or dd.max_drop_s > 0, "dedup.max_drop_s", dd.max_drop_s, "a number > 0 or null")
        need(v.min_speed_cm_s >= 0, "velocity.min_speed_cm_s", v.min_speed_cm_s, "a number >= 0 (cm/s)")
        for k in ("max_still_s", "max_backward_s"):
            val = getattr(v, k)
            need(val is None or val >= 0, f"velocity.{k}", val, "a number >= 0 (seconds) or null")
        need(v.min_turn_deg >= 0, "velocity.min_turn_deg", v.min_turn_deg, "a number >= 0 (degrees)")
        need(r.mode in RESAMPLE_MODES, "resample.mode", r.mode, "one of " + ", ".join(RESAMPLE_MODES))
        need(r.fps > 0, "resample.fps", r.fps, "a number > 0 (frames/s)")
        need(r.motion_target_cm is None or r.motion_target_cm > 0, "resample.motion_target_cm",
             r.motion_target_cm, "a number > 0 (cm per frame) or null")
        need(r.max_motion_step >= 1, "resample.max_motion_step", r.max_motion_step, "a number >= 1 (frames)")
        need(c.frames >= 1 and c.frames % 4 == 1, "clip.frames", c.frames,
             "an integer with frames % 4 == 1 (e.g. 57, 33, 9)")
        need(c.stride >= 1, "clip.stride", c.stride, "an integer >= 1 (frames)")
        for k in ("height", "width"):
            val = getattr(c, k)
            need(val >= 2 and val % 2 == 0, f"clip.{k}", val, "an even integer >= 2 (pixels)")
        need(o.frame_codec in FRAME_CODECS, "output.frame_codec", o.frame_codec, "one of " + ", ".join(FRAME_CODECS))
        need(0 <= o.crf <= 51, "output.crf", o.crf, "an integer in [0, 51]")
        need(o.preset in X264_PRESETS, "output.preset", o.preset, "one of " + ", ".join(X264_PRESETS))
        need(1 <= o.jpeg_quality <= 100, "output.jpeg_quality", o.jpeg_quality, "an integer in [1, 100]")
        need(o.shard_max_rows >= 1, "output.shard_max_rows", o.shard_max_rows, "an integer >= 1")
        need(o.shard_max_bytes >= 1, "output.shard_max_bytes", o.shard_max_bytes, "an integer >= 1 (bytes)")
        need(o.row_group_rows >= 1, "output.row_group_rows", o.row_group_rows, "an integer >= 1")
        return p

    def fingerprint(self) -> str:
        """sha256 of everything that changes the clips or rejects of an episode (not the shard layout)."""
        d = self.to_dict()
        out = d.pop("output")
        d["output"] = {k: out[k] for k in ("frame_codec", "crf", "preset", "jpeg_quality")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    def with_overrides(self, **parts: Any) -> "CurateConfig":
        """A copy with whole sub-configs or fields replaced (``with_overrides(clip=ClipConfig(...))``)."""
        return replace(self, **parts)


@dataclass(frozen=True)
class CurateSection:
    """The ``curate:`` section of pipeline.yaml: the curation ``config`` plus how to run it: ``engine``
    (local | ray), ``workers`` (processes, or Ray CPUs) and ``dataset`` (the shards folder name under
    ``<workdir>/shards/``)."""

    config: CurateConfig = field(default_factory=CurateConfig)
    engine: str = "local"
    workers: int = 2
    dataset: str = "default"


def parse_curate_section(d: Mapping[str, Any] | None) -> CurateSection:
    """Parse a whole ``curate:`` section; ``ValueError`` listing every bad key (``curate.<key>: ...``)."""
    d = dict(d or {})
    problems: list[str] = []
    engine = d.pop("engine", "local")
    workers = d.pop("workers", 2)
    dataset = d.pop("dataset", "default")
    if engine not in ENGINES:
        problems.append(f"curate.engine: {engine!r} is not allowed; expected one of {', '.join(ENGINES)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        problems.append(f"curate.workers: {workers!r} is not allowed; expected an integer >= 1 (processes)")
    if not isinstance(dataset, str) or not dataset or "/" in dataset or dataset.startswith("."):
        problems.append(f"curate.dataset: {dataset!r} is not allowed; expected a plain folder name")
    cfg = CurateConfig()
    try:
        cfg = CurateConfig.from_dict(d)
    except ValueError as e:
        problems += str(e).splitlines()
    if problems:
        raise ValueError("\n".join(problems))
    return CurateSection(cfg, engine, workers, dataset)


def _parse_sub(cls: type, value: Any, key: str, problems: list[str]) -> Any:
    """Build the sub-config ``cls`` from a mapping, checking key names and value types."""
    if value is None:
        return cls()
    if not isinstance(value, Mapping):
        problems.append(f"{key}: {value!r} is not allowed; expected a mapping")
        return cls()
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    default = cls()
    for k, v in value.items():
        if k not in known:
            problems.append(f"{key}.{k}: unknown key; allowed keys here: {', '.join(known)}")
            continue
        dv = getattr(default, k)
        typ = str(known[k].type)
        optional = "None" in typ
        if v is None and optional:
            kwargs[k] = None
        elif isinstance(dv, bool) or typ == "bool":
            if not isinstance(v, bool):
                problems.append(f"{key}.{k}: {v!r} is not allowed; expected true or false")
            else:
                kwargs[k] = v
        elif typ.startswith("int"):
            if isinstance(v, bool) or not isinstance(v, int):
                problems.append(f"{key}.{k}: {v!r} is not allowed; expected an integer")
            else:
                kwargs[k] = v
        elif "float" in typ:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                problems.append(f"{key}.{k}: {v!r} is not allowed; expected a number" + (" or null" if optional else ""))
            else:
                kwargs[k] = float(v)
        elif typ.startswith("tuple"):
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
                problems.append(f"{key}.{k}: {v!r} is not allowed; expected a list of names")
            else:
                kwargs[k] = tuple(v)
        elif typ == "str":
            if not isinstance(v, str):
                problems.append(f"{key}.{k}: {v!r} is not allowed; expected a string")
            else:
                kwargs[k] = v
        else:  # pragma: no cover - every field type is handled above
            kwargs[k] = v
    return cls(**{**{f: getattr(default, f) for f in known}, **kwargs})
