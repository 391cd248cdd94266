"""The stage model: a curation stage is one class that every engine runs.

In the manner of cosmos-curate's ``CuratorStage``, a :class:`Stage` has its config (a section of
:class:`~curation.config.CurateConfig`), its :attr:`~Stage.resources`, a :meth:`~Stage.setup` that runs once in
the worker process before any episode (load a model, build tables), and a :meth:`~Stage.process` step over a
batch of items. The engines (:mod:`curation.engines`: a local process pool, Ray actors) build the stage list
once, ship the same stage objects to their workers, call ``setup`` there, and stream each episode through them.

What flows between stages is a stream of items, in source order:

- :class:`Frame`: one decoded video frame (``index`` = its row in actions.csv) and ``fold_from``, the first
  source frame whose actions fold into it: a stage that drops a frame hands its ``fold_from`` on to the next
  frame it keeps, so no key press or mouse motion is lost (see :func:`curation.stages.fold_spans`);
- :class:`SegmentEnd`: the frames since the previous one form a segment (a span that passed velocity
  validation); stages that hold state flush it here;
- :class:`Clip`: a finished clip (its folded actions and encoded frames);
- :class:`DropSpan`: what a stage dropped and why (it ends up in rejects.parquet, in stream order).

A stage may add columns to the clip rows: it declares them in :meth:`Stage.clip_fields` (Arrow fields, written
after DESIGN.md section 4's columns, in pipeline order) and sets their values in each :class:`Clip`'s
``columns``. Per-episode values it reports go into ``EpisodeContext.notes`` (they are kept in the episode's
outcome, rejected episodes included), files it writes for the driver into ``ep.tmp`` (named in
:attr:`Stage.side_files`: they stay in the episode's work folder even when the episode is rejected), and
:meth:`Stage.summarise` turns them into the stage's section of manifest.json once every episode is done.

A stage handles the item types it knows and passes every other item on unchanged and in place, so the order of
the output stream (and of the reject records) does not depend on how the stream is cut into batches.
Per episode: :meth:`Stage.start` (decisions from the actions alone; may raise :class:`Reject` to reject the
whole episode), :meth:`Stage.process` over batches, :meth:`Stage.finish` at the end of the stream and
:meth:`Stage.abort` when the episode is abandoned.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Union

import numpy as np

if TYPE_CHECKING:
    from capture.episode import EpisodeMeta
    from curation.config import CurateConfig
    from curation.stages import FrameActions


@dataclass(frozen=True)
class DatasetParams:
    """Dataset-wide values resolved before episodes are processed: ``keys`` (the action space), ``fps``
    (frames/s of every clip) and ``motion_target_cm`` (cm per output frame for motion-matched sources)."""

    keys: tuple[str, ...]
    fps: float
    motion_target_cm: float | None = None


@dataclass(frozen=True)
class Resources:
    """What one worker running a stage needs: ``cpus`` (cores) and ``gpus`` (devices; fractions share one).
    The engines size a worker by the largest need over its stages (the stages of an episode run fused, in one
    worker)."""

    cpus: float = 1.0
    gpus: float = 0.0


@dataclass(frozen=True)
class DropSpan:
    """Source frames ``start_frame..end_frame`` (inclusive; -1 when unknown) dropped by ``stage`` for
    ``reason``; ``kind`` is ``span`` (frames), ``clip`` (a whole clip) or ``episode``. ``frames``: how many source
    frames the record removed from the dataset when that is not the whole span (resampling skips some frames of
    a segment; a teleport cut removes one); None: all of ``start_frame..end_frame``."""

    start_frame: int
    end_frame: int
    stage: str
    reason: str
    kind: str = "span"
    frames: int | None = None

    @property
    def frame_count(self) -> int:
        """Source frames removed (the ``frames`` column of rejects.parquet)."""
        if self.frames is not None:
            return int(self.frames)
        if self.start_frame < 0 or self.end_frame < self.start_frame:
            return 0
        return int(self.end_frame - self.start_frame + 1)


@dataclass
class Frame:
    """A decoded frame: ``index`` (source frame number = row of actions.csv), ``t`` (seconds since the episode
    start), ``image`` (``uint8[H, W, 3]`` RGB) and ``fold_from`` (the first source frame whose actions fold into
    this one; equal to ``index`` until a stage drops the frames before it)."""

    index: int
    t: float
    image: np.ndarray
    fold_from: int


@dataclass(frozen=True)
class SegmentEnd:
    """End of a segment: source frames ``start..end`` (inclusive) passed velocity validation together."""

    start: int
    end: int


@dataclass
class Clip:
    """A finished clip: ``actions`` (one folded row per clip frame, :class:`~curation.stages.FrameActions`),
    ``media`` (the clip as an mp4, or one JPEG per frame) and the source frames it covers, ``first`` (the first
    frame folded into it) to ``last``; ``start_frame`` (the source frame of its first frame) names it.
    ``columns``: the values of the columns stages add to its row (:meth:`Stage.clip_fields`)."""

    start_frame: int
    first: int
    last: int
    actions: "FrameActions"
    media: bytes | list[bytes]
    columns: dict[str, Any] = field(default_factory=dict)


Item = Union[Frame, SegmentEnd, Clip, DropSpan]


class Reject(Exception):
    """Raised by a stage to reject the whole episode: ``stage`` and ``reason`` go to rejects.parquet."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage, self.reason = stage, reason


@dataclass
class EpisodeContext:
    """One episode as the stages see it: its id, ``meta`` (:class:`capture.episode.EpisodeMeta`), ``actions``
    (:class:`~curation.stages.FrameActions`, one row per source frame), the dataset ``params``, ``tmp`` (a
    scratch folder inside the episode's work folder: encoders write there), ``video`` (the source video, for a
    stage that analyses it whole in :meth:`Stage.start`) and what earlier stages decided
    in :meth:`Stage.start`: ``valid`` (frames that pass velocity validation) and ``notes`` (values reported in
    the episode's outcome, e.g. ``motion_step``)."""

    episode_id: str
    meta: "EpisodeMeta"
    actions: "FrameActions"
    params: DatasetParams
    tmp: Path
    video: Path | None = None
    valid: np.ndarray | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        """Source frames per second."""
        return float(self.meta.fps)

    def __len__(self) -> int:
        return len(self.actions)


class Stage(ABC):
    """One curation step over a stream of items (see the module doc).

    Subclasses set :attr:`name` (the stage name in rejects.parquet) and, when they need more than one core,
    :attr:`resources`; they take the whole :class:`~curation.config.CurateConfig` and read their own section.
    A stage must be picklable before :meth:`setup` (the engines ship it to their workers) and deterministic:
    the same stream in gives the same stream out, so both engines write the same shards byte for byte.
    """

    name: ClassVar[str] = ""
    resources: ClassVar[Resources] = Resources()
    #: files the stage writes into ``ep.tmp`` that stay in the episode's work folder when it is rejected
    side_files: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: "CurateConfig") -> None:
        self.cfg = cfg

    @classmethod
    def enabled(cls, cfg: "CurateConfig") -> bool:
        """Whether the pipeline built from ``cfg`` includes this stage (e.g. ``dedup.enabled``)."""
        return True

    def clip_fields(self) -> list:
        """The ``pyarrow.Field`` s of the columns this stage adds to each clip row (their values: ``Clip.columns``)."""
        return []

    def summarise(self, outcomes: Mapping[str, Mapping[str, Any]], work_dirs: Mapping[str, Path],
                  out_dir: Path) -> dict[str, Any] | None:
        """In the driver, once every episode is done: the stage's section of manifest.json (None: no section).
        ``outcomes``: each episode's outcome (its ``notes`` hold what the stages reported); ``work_dirs``: each
        episode's work folder (with the stage's :attr:`side_files`); ``out_dir``: the shards folder."""
        return None

    def setup(self) -> None:
        """Once per worker process, before the first episode: load models, import heavy libraries."""

    def start(self, ep: EpisodeContext) -> None:
        """A new episode begins: reset per-episode state and decide what the actions alone decide (may raise
        :class:`Reject`)."""
        self.ep = ep

    @abstractmethod
    def process(self, items: list[Item]) -> list[Item]:
        """The next batch of the episode's stream, in order -> the items for the next stage, in order."""

    def finish(self) -> list[Item]:
        """The episode's stream has ended: the items still held back."""
        return []

    def abort(self) -> None:
        """The episode is abandoned (rejected or failed): release what :meth:`start` and :meth:`process`
        opened (encoders, temp files)."""

    def teardown(self) -> None:
        """Once per worker process, after the last episode."""


class FrameStage(Stage):
    """A stage over the frames of one segment at a time: :meth:`frames` gets each run of consecutive frames of
    a batch, :meth:`segment_end` is called at each :class:`SegmentEnd` (its items go before the marker, which
    is passed on); every other item passes through in place."""

    def process(self, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        run: list[Frame] = []
        for it in items:
            if isinstance(it, Frame):
                run.append(it)
                continue
            if run:
                out += self.frames(run)
                run = []
            if isinstance(it, SegmentEnd):
                out += self.segment_end(it)
            out.append(it)
        if run:
            out += self.frames(run)
        return out

    @abstractmethod
    def frames(self, frames: list[Frame]) -> list[Item]:
        """Consecutive frames of the current segment -> the items to pass on (kept frames, drop records)."""

    def segment_end(self, seg: SegmentEnd) -> list[Item]:
        """The segment ``seg`` has ended: items held back, emitted before the marker. Reset segment state."""
        return []


def run_stream(stages: list[Stage], batches, sink) -> None:
    """Push ``batches`` (an iterable of item lists, in order) through ``stages`` and hand what leaves the last
    stage to ``sink(items)``; at the end, flush every stage in order (:meth:`Stage.finish`)."""
    for items in batches:
        for st in stages:
            if not items:
                break
            items = st.process(items)
        if items:
            sink(items)
    carry: list[Item] = []
    for st in stages:
        carry = (st.process(carry) if carry else []) + st.finish()
    if carry:
        sink(carry)


def clip_fields(stages: list[Stage]) -> list:
    """The columns ``stages`` add to the clip rows, in pipeline order (:meth:`Stage.clip_fields`)."""
    return [f for st in stages for f in st.clip_fields()]


def max_resources(stages: list[Stage]) -> Resources:
    """What one worker running all of ``stages`` needs: the largest need of each kind."""
    return Resources(cpus=max([s.resources.cpus for s in stages] + [1.0]),
                     gpus=max([s.resources.gpus for s in stages] + [0.0]))
