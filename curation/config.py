"""The curation config: one class per stage, and the ``curate:`` section of pipeline.yaml.

Each key is declared once below with its type, default, range and doc (:mod:`capture.settings`);
``CurateConfig.from_dict`` checks a mapping and reports every bad key at once. :meth:`CurateConfig.to_dict` is
the form stored in manifest.json; :meth:`CurateConfig.fingerprint` (sha256 of the parts that change what is
written) decides whether per-episode work of an earlier run can be reused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields, replace
from typing import Any, Literal

from pydantic import model_validator

from capture.ray_engine import ENGINES
from capture.settings import Field, Frames1p4k, Invalid, SafeName, settings
from capture.video import X264_PRESETS, X264Preset

FRAME_CODECS: tuple[str, ...] = ("h264", "jpeg")
RESAMPLE_MODES: tuple[str, ...] = ("none", "fps")
DEDUP_PLANES: tuple[str, ...] = ("gray", "yuv")
CONSISTENCY_ACTIONS: tuple[str, ...] = ("reject", "flag")
SPLIT_BY: tuple[str, ...] = ("episode", "scene", "seed")
SPLITS: tuple[str, ...] = ("train", "val", "test")

__all__ = ["ClipConfig", "ConsistencyConfig", "CONSISTENCY_ACTIONS", "CurateConfig", "CurateSection", "DedupConfig",
           "ENGINES", "FRAME_CODECS", "OutputConfig", "RESAMPLE_MODES", "ResampleConfig", "SPLIT_BY", "SPLITS",
           "SplitConfig", "VelocityConfig", "X264_PRESETS"]


@settings
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

    Only frames whose row has input are dropped that way (the game froze while the player pressed or moved
    something). An identical frame whose row has no input (no key held, ``|d_pitch| + |d_yaw| <
    idle_turn_deg``) is a player standing still and is kept, up to ``keep_idle_s`` seconds in a row.
    """

    enabled: bool = Field(True, description="drop near-identical frames, folding their actions into the next kept one")
    planes: Literal[DEDUP_PLANES] = Field("yuv", description="compare luma only (gray) or luma and chroma (yuv)")
    compare_width: int = Field(160, ge=8, description="frames are compared downscaled to at most this width, px")
    block: int = Field(4, ge=1, le=64, description="block size at the compare resolution, px")
    hi: float = Field(5.0, ge=0, description="a block whose mean |difference| is above this differs, grey levels")
    lo: float = Field(2.0, ge=0, description="threshold for the fraction test (<= hi), grey levels")
    frac: float = Field(0.33, ge=0, le=1, description="a frame differs when more than this fraction of blocks is above lo")
    max_drop_s: float | None = Field(None, gt=0, description="keep a frame after this many seconds of drops (null: no limit)")
    keep_idle_s: float | None = Field(2.0, ge=0, description="identical frames while nothing is pressed are a player standing still: keep up to this many seconds of them in a row, s (null: all)")
    idle_turn_deg: float = Field(0.05, ge=0, description="|d_pitch| + |d_yaw| below this counts as no mouse input, degrees per frame")

    @model_validator(mode="after")
    def _lo_below_hi(self) -> "DedupConfig":
        if self.lo > self.hi:
            raise Invalid("lo", self.lo, f"a number in [0, hi={self.hi}] (grey levels)")
        return self


@settings
class VelocityConfig:
    """Velocity validation on the ``speed`` column (signed forward ground speed, cm/s).

    A frame is *still* when ``|speed| < min_speed_cm_s`` and (with ``turning_is_motion``) the mouse moved less
    than ``min_turn_deg`` that frame; it is *backwards* when ``speed <= -min_speed_cm_s``. Runs of still frames
    longer than ``max_still_s`` and runs of backwards frames longer than ``max_backward_s`` are excluded
    (None: tolerated at any length); shorter runs are kept. A camera position that jumps faster than
    ``max_speed_cm_s`` from one frame to the next (a teleport or respawn; 10,000 cm/s = 360 km/h, above any
    walking or driving in the sources) excludes the frame it lands on. Excluded spans split the episode into
    segments, so no clip crosses a teleport.
    """

    enabled: bool = Field(True, description="exclude long standing-still and walking-backwards spans")
    min_speed_cm_s: float = Field(5.0, ge=0, description="slower than this counts as standing still, cm/s")
    max_still_s: float | None = Field(2.0, ge=0, description="longest still run kept, s (null: any length)")
    max_backward_s: float | None = Field(2.0, ge=0, description="longest backwards run kept, s (null: any length)")
    turning_is_motion: bool = Field(True, description="a frame that turns the camera is not still")
    min_turn_deg: float = Field(0.05, ge=0, description="|d_pitch| + |d_yaw| that counts as turning, degrees per frame")
    max_speed_cm_s: float | None = Field(10000.0, gt=0, description="a camera jump faster than this between two frames is a teleport or respawn: that frame is dropped and the episode cut there, cm/s (null: no check)")


@settings
class ResampleConfig:
    """Resampling to the dataset frame rate ``fps`` (frames/s), by timestamps.

    ``mode: fps`` picks, for each point of a ``1/fps`` grid, the nearest available frame (after dedup) and
    folds the actions of the skipped frames into the kept ones; ``mode: none`` keeps every frame and requires
    episodes recorded at ``fps``. ``motion_sources`` (e.g. ``[sekai]``) are resampled by motion instead: the
    step is chosen so that their median per-frame camera displacement matches ``motion_target_cm`` (cm per
    output frame; ``null``: the median of the other sources' episodes at ``fps``, measured in the same run),
    clamped to ``[1, max_motion_step]`` source frames. Their clips are labelled with the dataset ``fps``.
    """

    mode: Literal[RESAMPLE_MODES] = Field("fps", description="fps: resample by timestamps; none: keep every frame")
    fps: float = Field(25.0, gt=0, description="frame rate of the dataset, frames/s")
    motion_sources: tuple[str, ...] = Field((), description="sources resampled by camera motion instead (e.g. [sekai])")
    motion_target_cm: float | None = Field(None, gt=0, description="motion per output frame of motion_sources, cm (null: measured)")
    max_motion_step: float = Field(8.0, ge=1, description="largest step of motion resampling, source frames")


@settings
class ClipConfig:
    """Resize + centre crop to ``height`` x ``width`` (aspect kept, cv2.INTER_AREA when shrinking) and cut
    ``frames``-frame windows every ``stride`` output frames (``frames % 4 == 1``, the causal VAE's rule)."""

    frames: Frames1p4k = Field(57, description="frames per clip, 1 + 4k (Matrix-Game 2.0: 57)")
    stride: int = Field(57, ge=1, description="output frames between window starts (== frames: no overlap)")
    height: int = Field(352, ge=2, multiple_of=2, description="clip height, px")
    width: int = Field(640, ge=2, multiple_of=2, description="clip width, px")


@settings
class OutputConfig:
    """Shard writing. ``frame_codec``: ``h264`` (the clip as an mp4 in column ``video``) or ``jpeg`` (one
    JPEG per frame in column ``frames``). ``crf``/``preset``: x264 settings; ``jpeg_quality`` 1-100.
    A shard is closed when it reaches ``shard_max_rows`` clips or ``shard_max_bytes`` bytes of clip data;
    ``row_group_rows`` clips per Parquet row group (the reader's unit of random access).
    ``keep_work``: keep the per-episode work folder (``.work/``) after the manifest is written, so a later
    run with more episodes only processes the new ones."""

    frame_codec: Literal[FRAME_CODECS] = Field("h264", description="h264: the clip as an mp4; jpeg: one JPEG per frame")
    crf: int = Field(18, ge=0, le=51, description="x264 quality: lower is better, 18 is visually lossless")
    preset: X264Preset = Field("veryfast", description="x264 preset of the clips")
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality of frame_codec jpeg")
    shard_max_rows: int = Field(1000, ge=1, description="clips per shard at most")
    shard_max_bytes: int = Field(500_000_000, ge=1, description="bytes of clip data per shard at most")
    row_group_rows: int = Field(8, ge=1, description="clips per Parquet row group (the unit of random access)")
    keep_work: bool = Field(True, description="keep .work/ so a later run only processes new episodes")


@settings
class ConsistencyConfig:
    """Action-label consistency (stage ``consistency``, :mod:`curation.consistency`): the labelled mouse and keys
    against the camera motion seen in the video (:mod:`capture.motion`). ``on_episode``: ``reject`` an episode
    whose pooled labels fail the diagnosis (its faults and fixes are the reason) or only ``flag`` it in the
    manifest. ``on_clip``: ``flag`` (scores and flags go into the clip's ``check_*`` columns) or ``reject`` clips
    with a strong flag or two flags. ``fov_deg``: horizontal field of view for episodes whose meta.json has no
    ``config.fov_deg`` (null: 90 is assumed and the mouse-scale test is skipped). ``translation_gap``: frames
    between the images of the translation evidence (2-4 for slow real footage). With ``enabled: false`` the
    shards have no ``check_*`` columns."""

    enabled: bool = Field(True, description="check the action labels against the camera motion in the video (adds the check_* columns)")
    on_episode: Literal[CONSISTENCY_ACTIONS] = Field("reject", description="reject: drop an episode whose labels fail the diagnosis; flag: only record it")
    on_clip: Literal[CONSISTENCY_ACTIONS] = Field("flag", description="flag: scores and flags in check_* columns; reject: drop clips with a strong flag or two flags")
    fov_deg: float | None = Field(None, gt=1, lt=179, description="horizontal field of view of episodes whose meta.json has none, degrees (null: the mouse-scale test is skipped)")
    translation_gap: int = Field(1, ge=1, le=8, description="frames between the images of the translation evidence (2-4 for slow real footage)")


@settings
class SplitConfig:
    """Held-out split (stage ``split``, :mod:`curation.split`): each episode goes to train, val or test by a hash
    of its id (``by: episode``), of its scene (``by: scene``: whole scenes are held out) or of its seed, salted
    with ``salt``: ``u`` = the first 64 bits of ``sha256("<salt>:<key>")`` / 2^64; test when ``u < test``, val
    when ``u < test + val``, else train. Deterministic and stable: adding episodes never moves one already
    assigned. With ``enabled: false`` every episode is train and the shards have no ``split`` column."""

    enabled: bool = Field(True, description="assign each episode to train, val or test (adds the split column)")
    by: Literal[SPLIT_BY] = Field("episode", description="what the split hashes: the episode id, its scene (whole scenes held out) or its seed")
    val: float = Field(0.1, ge=0, lt=1, description="fraction of episodes for validation")
    test: float = Field(0.1, ge=0, lt=1, description="fraction of episodes held out for generate and eval")
    salt: int = Field(0, ge=0, description="salt of the hash (another salt, another assignment)")

    @model_validator(mode="after")
    def _train_keeps_episodes(self) -> "SplitConfig":
        if self.val + self.test >= 1:
            raise Invalid("test", self.test, f"val + test < 1 (val is {self.val}): train must keep episodes")
        return self


@settings
class CurateConfig:
    """The whole curation config. ``action_keys``: the dataset's key list (None: the first episode's, in
    id order); episodes whose keys are a subset are remapped, others rejected. ``check_video``: probe and
    hash each source video before decoding (catches truncated files up front)."""

    dedup: DedupConfig = Field(default_factory=DedupConfig, description="redundant-frame filter")
    velocity: VelocityConfig = Field(default_factory=VelocityConfig, description="velocity validation")
    resample: ResampleConfig = Field(default_factory=ResampleConfig, description="frame-rate resampling")
    clip: ClipConfig = Field(default_factory=ClipConfig, description="resize, crop and clip length")
    output: OutputConfig = Field(default_factory=OutputConfig, description="shard writing")
    consistency: ConsistencyConfig = Field(default_factory=ConsistencyConfig, description="action labels against the video")
    split: SplitConfig = Field(default_factory=SplitConfig, description="held-out train / val / test split")
    action_keys: tuple[str, ...] | None = Field(None, min_length=1, description="the dataset's keys (null: the first episode's)")
    check_video: bool = Field(True, description="probe and hash each source video before decoding")

    def fingerprint(self) -> str:
        """sha256 of everything that changes the clips or rejects of an episode (not the shard layout)."""
        d = self.to_dict()
        out = d.pop("output")
        d["output"] = {k: out[k] for k in ("frame_codec", "crf", "preset", "jpeg_quality")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    def with_overrides(self, **parts: Any) -> "CurateConfig":
        """A copy with whole sub-configs or fields replaced (``with_overrides(clip=ClipConfig(...))``)."""
        return replace(self, **parts)


@settings
class CurateSection(CurateConfig):
    """The ``curate:`` section of pipeline.yaml: the curation config (:class:`CurateConfig`, flat) plus how to
    run it and where the shards go."""

    engine: Literal[ENGINES] = Field("local", description="local (a process pool) or ray (Ray actors on ray.address, pip install playmill[ray])")
    workers: int = Field(2, ge=1, description="worker processes (or Ray actors)")
    dataset: SafeName = Field("default", description="the shards folder under <workdir>/shards/ (a safe name: letters, "
                                                     "digits, _ . -)")

    @property
    def config(self) -> CurateConfig:
        """The :class:`CurateConfig` part (what the manifest records and the fingerprint hashes)."""
        return CurateConfig(**{f.name: getattr(self, f.name) for f in fields(CurateConfig)})
