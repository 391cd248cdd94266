"""The label diagnosis of an import, run on what it would write, before it writes it.

Every footage importer (:mod:`curation.generic`, :mod:`curation.vpt`, :mod:`curation.importers` for Sekai) turns
its source into per-frame labels; here those labels meet the camera motion seen in the source video
(:func:`capture.motion.estimate_motion`) and :func:`curation.consistency.diagnose` names each convention error
(yaw or pitch sign, swapped axes, rows shifted, radians or counts for degrees, W/S or A/D swapped, a mirrored
video, labels of another video). The importer translates each fault into the change of its own config that fixes
it. ``check: warn`` imports and prints the fault and the fix; ``refuse`` quarantines the episode instead;
``--check`` on the command line only diagnoses.

An import's episodes share their conventions, so besides each episode's diagnosis the frames of all of them are
pooled (:func:`curation.consistency.pool`): convention errors are systematic and show up clearest pooled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["CheckItem", "CheckReport", "analyse_item", "check_items", "check_mode_outcome", "fault_text",
           "shift_rows"]


@dataclass
class CheckItem:
    """The labels of one episode an import would write: its ``name``, the source ``video`` (rows describe its
    frames ``first .. first + n - 1``), ``keys`` (the action space), ``keyboard`` bool [n, K], ``mouse`` [n, 2]
    (d_pitch, d_yaw degrees), ``speed`` [n] cm/s (None: unknown), ``collision`` [n] or None, ``fps``; ``fov_deg`` horizontal field
    of view (None: unknown, 90 assumed and the scale not judged), ``mirror`` (the import flips the video),
    ``source``, ``valid`` (rows that are gameplay; others are ignored) and ``translation_gap`` (frames between the
    images of the translation evidence: 2-4 for slow real footage)."""

    name: str
    video: Path
    keys: Sequence[str]
    keyboard: np.ndarray
    mouse: np.ndarray
    speed: np.ndarray | None
    collision: np.ndarray | None
    fps: float
    first: int = 0
    fov_deg: float | None = None
    mirror: bool = False
    source: str = ""
    valid: np.ndarray | None = None
    translation_gap: int = 1


class _Window:
    """Translation evidence of a slice ``first .. first + n - 1`` of a video's motion (labels of the slice only)."""

    def __init__(self, motion: Any, first: int, n: int) -> None:
        self.motion, self.first, self.n = motion, first, n

    def translation_evidence(self, d_pitch: np.ndarray, d_yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        total = len(self.motion)
        fp, fy = np.zeros(total), np.zeros(total)
        fp[self.first:self.first + self.n] = d_pitch
        fy[self.first:self.first + self.n] = d_yaw
        f, s = self.motion.translation_evidence(fp, fy)
        return f[self.first:self.first + self.n], s[self.first:self.first + self.n]

    def __len__(self) -> int:
        return self.n


def analyse_item(item: CheckItem):
    """:class:`curation.consistency.EpisodeConsistency` of one item (its diagnosis, labels and visual series);
    ``error`` says why when the video could not be analysed."""
    from capture.motion import MotionConfig, estimate_motion
    from curation.consistency import EpisodeConsistency, VisualSeries, diagnose, labels_from_arrays

    n = len(item.mouse)
    fov = float(item.fov_deg) if item.fov_deg is not None else 90.0
    try:
        m = estimate_motion(item.video, fov, MotionConfig(translation_gap=item.translation_gap))
    except Exception as e:  # an unreadable video: the import reports it anyway
        return EpisodeConsistency(item.name, item.source, None, error=f"{type(e).__name__}: {e}")
    if len(m) < item.first + n:
        return EpisodeConsistency(item.name, item.source, None,
                                  error=f"the video has {len(m)} frames, the labels need {item.first + n}")
    sl = slice(item.first, item.first + n)
    conf = np.array(m.confident[sl], bool)
    labels = labels_from_arrays(tuple(item.keys), np.asarray(item.keyboard, np.uint8), item.mouse, item.speed,
                                item.collision, item.source)
    if item.valid is not None:
        conf &= np.asarray(item.valid, bool)
        labels.observable &= np.asarray(item.valid, bool)
    vis = VisualSeries(np.array(m.yaw_deg[sl]), np.array(m.pitch_deg[sl]), conf, _Window(m, item.first, n),
                       m.config.min_translation_px)
    if item.mirror:
        vis = vis.mirrored()
    diag = diagnose(labels, vis, fov_known=item.fov_deg is not None, fov_deg=fov, source=item.source)
    return EpisodeConsistency(item.name, item.source, diag, fov, item.fov_deg is not None, labels, vis,
                              vis.evidence(labels.d_pitch, labels.d_yaw))


@dataclass
class CheckReport:
    """What a check found: ``episodes`` (each :class:`curation.consistency.EpisodeConsistency`), ``diagnosis`` (all
    episodes pooled, or the only one's; None when none could be analysed), ``failed`` ``(item, reason)`` for what
    could not be checked at all, ``fixes``: the config changes that fix the pooled faults (the importer's), and
    ``notes`` the importer's remarks (what the import itself would refuse)."""

    episodes: list[Any] = field(default_factory=list)
    diagnosis: Any = None
    failed: list[tuple[str, str]] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.diagnosis is not None and self.diagnosis.ok and not self.failed

    def lines(self) -> list[str]:
        """The report, one line each: per episode, pooled, then the fixes."""
        out = [f"  note: {n}" for n in self.notes]
        for e in self.episodes:
            out.append(f"  {e.episode_id}: " + (f"could not check: {e.error}" if e.diagnosis is None else
                                              ("ok: " if e.diagnosis.ok else "FAULT: ") + e.diagnosis.summary()))
        for name, why in self.failed:
            out.append(f"  {name}: not checked: {why}")
        if self.diagnosis is not None and len(self.episodes) > 1:
            out.append(("all episodes pooled: ok: " if self.diagnosis.ok else "all episodes pooled: FAULT: ")
                       + self.diagnosis.summary())
        if self.fixes:
            out.append("the config change that fixes it:" if len(self.fixes) == 1 else "the config changes that fix it:")
            out += [f"    {f}" for f in self.fixes]
        return out


def check_items(items: Sequence[CheckItem]) -> CheckReport:
    """Diagnose each item, and all of them pooled (:func:`curation.consistency.pool`)."""
    from curation.consistency import diagnose, pool

    rep = CheckReport(episodes=[analyse_item(it) for it in items])
    good = [e for e in rep.episodes if e.diagnosis is not None]
    if len(good) == 1:
        rep.diagnosis = good[0].diagnosis
    elif good:
        pooled = pool(good)
        if pooled is not None:
            rep.diagnosis = diagnose(*pooled, fov_known=all(e.fov_known for e in good), fov_deg=good[0].fov_deg,
                                     source=good[0].source)
    return rep


def check_mode_outcome(items: Sequence[CheckItem], mode: str, fixes: Callable[[Any, Any], list[str]], result,
                       refuse_codes: Sequence[str] | None = None) -> set[str]:
    """Run the check of an import with ``check: warn`` or ``refuse`` and record it in ``result``
    (:class:`capture.imports.ImportResult`): each faulty episode (or, pooled, all of them) becomes a warning with the
    config change that fixes it, or with ``refuse`` a failure (only for a fault in ``refuse_codes``, when given;
    the others stay warnings). ``fixes(diagnosis, checked)`` gives the importer's config changes; ``checked`` is
    the episode's :class:`curation.consistency.EpisodeConsistency` (its visual series, to score candidate fixes
    without decoding the video again), None for the pooled diagnosis. Returns the names of the refused episodes."""
    rep = check_items(items)
    refused: set[str] = set()
    faulty = [e for e in rep.episodes if e.diagnosis is not None and not e.diagnosis.ok]
    pooled_bad = rep.diagnosis is not None and not rep.diagnosis.ok
    for e in rep.episodes:
        if e.diagnosis is None:
            result.notes.append(f"{e.episode_id}: labels not checked against the video: {e.error}")
    groups = [(e.episode_id, e.diagnosis, e) for e in faulty]
    if pooled_bad and not faulty:  # systematic, only visible pooled
        groups = [("all episodes pooled", rep.diagnosis, None)]
    for name, diag, checked in groups:
        text = fault_text(diag, fixes(diag, checked))
        if mode == "refuse" and (refuse_codes is None or set(diag.codes) & set(refuse_codes)):
            targets = [name] if name != "all episodes pooled" else [it.name for it in items]
            for t in targets:
                refused.add(t)
                result.failed.append((t, text + " (or set check: warn to import anyway)"))
        else:
            result.warnings.append(f"{name}: {text}")
    return refused


def fault_text(diagnosis: Any, fixes: Sequence[str]) -> str:
    """One line: what is wrong (each fault) and the config change that fixes it (``fixes``, the importer's; else the
    diagnosis's own advice)."""
    what = "; ".join(f.what for f in diagnosis.faults)
    how = "; ".join(f.split("  #")[0].strip() for f in fixes) if fixes else "; ".join(f.fix for f in diagnosis.faults)
    return f"labels disagree with the video: {what}; fix: {how}"


def shift_rows(diagnosis: Any) -> int:
    """Rows by which a diagnosis with a ``shift`` fault says the labels must move earlier (negative: later): row
    ``i`` must take row ``i + k``. The diagnosis's lag ``L`` means the labels are ``-L`` frames late."""
    return -int(diagnosis.scores.lag)
