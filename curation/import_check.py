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

The fix an importer names is checked, not guessed from the fault's name alone: :func:`smallest_fix` tries candidate
config changes (sign flips, swapped axes, a mirrored video, swapped keys, a world frame, each with the row shift
and unit change the diagnosis measured), rebuilds the labels under each, diagnoses them against the motion already
measured (no second decode: :func:`rediagnose`) and keeps the candidate that changes the fewest settings among
those under which the labels agree with the video, tested on at least what the faulty labels were tested on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from itertools import groupby
from typing import Any, Callable, Iterable, Sequence, TypeVar

import numpy as np

__all__ = ["CheckItem", "CheckReport", "analyse_item", "item_motion", "diagnose_item", "rediagnose", "check_items",
           "check_mode_outcome", "smallest_fix", "fault_text", "shift_rows"]

C = TypeVar("C")


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


def item_motion(item: CheckItem):
    """The camera motion of an item's whole source video (:func:`capture.motion.estimate_motion`; the item's field
    of view, 90 degrees when unknown, and translation gap). Raises what the estimator raises for a bad video."""
    from capture.motion import MotionConfig, estimate_motion

    fov = float(item.fov_deg) if item.fov_deg is not None else 90.0
    return estimate_motion(item.video, fov, MotionConfig(translation_gap=item.translation_gap))


def diagnose_item(item: CheckItem, motion: Any):
    """:class:`curation.consistency.EpisodeConsistency` of an item's labels against its video's ``motion`` (the
    frames ``first .. first + n - 1`` the labels describe); ``error`` when the video is too short for them."""
    from curation.consistency import EpisodeConsistency, VisualSeries, diagnose, labels_from_arrays

    n = len(item.mouse)
    fov = float(item.fov_deg) if item.fov_deg is not None else 90.0
    if len(motion) < item.first + n or item.first < 0:
        return EpisodeConsistency(item.name, item.source, None,
                                  error=f"the video has {len(motion)} frames, the labels need {item.first + n}")
    sl = slice(item.first, item.first + n)
    conf = np.array(motion.confident[sl], bool)
    labels = labels_from_arrays(tuple(item.keys), np.asarray(item.keyboard, np.uint8), item.mouse, item.speed,
                                item.collision, item.source)
    if item.valid is not None:
        conf &= np.asarray(item.valid, bool)
        labels.observable &= np.asarray(item.valid, bool)
    vis = VisualSeries(np.array(motion.yaw_deg[sl]), np.array(motion.pitch_deg[sl]), conf,
                       _Window(motion, item.first, n), motion.config.min_translation_px)
    if item.mirror:
        vis = vis.mirrored()
    diag = diagnose(labels, vis, fov_known=item.fov_deg is not None, fov_deg=fov, source=item.source)
    return EpisodeConsistency(item.name, item.source, diag, fov, item.fov_deg is not None, labels, vis,
                              vis.evidence(labels.d_pitch, labels.d_yaw))


def analyse_item(item: CheckItem) -> tuple[Any, Any]:
    """``(EpisodeConsistency, motion)`` of one item: its video's motion measured, its labels diagnosed; the motion
    is None and ``error`` says why when the video could not be analysed."""
    from curation.consistency import EpisodeConsistency

    try:
        m = item_motion(item)
    except Exception as e:  # an unreadable video: the import reports it anyway
        return EpisodeConsistency(item.name, item.source, None, error=f"{type(e).__name__}: {e}"), None
    return diagnose_item(item, m), m


def _pooled(checks: Sequence[Any]):
    """The diagnosis of several analysed episodes: the only one's, or all frames pooled; None without any."""
    from curation.consistency import diagnose, pool

    good = [e for e in checks if e.diagnosis is not None]
    if len(good) == 1:
        return good[0].diagnosis
    pooled = pool(good) if good else None
    if pooled is None:
        return None
    return diagnose(*pooled, fov_known=all(e.fov_known for e in good), fov_deg=good[0].fov_deg, source=good[0].source)


def rediagnose(items: Sequence[CheckItem], motions: Sequence[Any]):
    """The diagnosis of ``items`` (labels rebuilt under a candidate config) against the ``motions`` already measured
    for them (same order; None: skipped), pooled as :func:`check_items` pools; None when nothing could be
    diagnosed."""
    return _pooled([diagnose_item(it, m) for it, m in zip(items, motions) if m is not None])


@dataclass
class CheckReport:
    """What a check found: ``episodes`` (each :class:`curation.consistency.EpisodeConsistency`), ``diagnosis`` (all
    episodes pooled, or the only one's; None when none could be analysed), ``failed`` ``(item, reason)`` for what
    could not be checked at all, ``fixes``: the config changes that fix the pooled faults (the importer's), and
    ``notes`` the importer's remarks (what the import itself would refuse); ``motions`` and ``indices`` keep each
    episode's measured motion and its item's position, for :func:`smallest_fix`."""

    episodes: list[Any] = field(default_factory=list)
    diagnosis: Any = None
    failed: list[tuple[str, str]] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    motions: list[Any] = field(default_factory=list)  # each episode's camera motion (None: not analysed)
    indices: list[int] = field(default_factory=list)  # each episode's position in the items checked

    def subset(self, keep: Sequence[int]) -> "CheckReport":
        """The report of the episodes at positions ``keep`` (their diagnosis, or pooled)."""
        eps = [self.episodes[i] for i in keep]
        return CheckReport(eps, _pooled(eps), motions=[self.motions[i] for i in keep],
                           indices=[self.indices[i] for i in keep])

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
    analysed = [analyse_item(it) for it in items]
    eps = [e for e, _ in analysed]
    return CheckReport(episodes=eps, diagnosis=_pooled(eps), motions=[m for _, m in analysed],
                       indices=list(range(len(items))))


def check_mode_outcome(items: Sequence[CheckItem], mode: str, fixes: Callable[[Any, Any], list[str]], result,
                       refuse_codes: Sequence[str] | None = None) -> set[str]:
    """Run the check of an import with ``check: warn`` or ``refuse`` and record it in ``result``
    (:class:`capture.imports.ImportResult`): each faulty episode (or, pooled, all of them) becomes a warning with the
    config change that fixes it, or with ``refuse`` a failure (only for a fault in ``refuse_codes``, when given;
    the others stay warnings). ``fixes(diagnosis, scope)`` gives the importer's config changes; ``scope`` is the
    :class:`CheckReport` of what the diagnosis covers (the faulty episodes with the same faults, pooled, or all
    of them), with the measured motions that :func:`smallest_fix` scores candidates against; episodes with the
    same faults share the fix found once. Returns the names of the refused episodes."""
    rep = check_items(items)
    refused: set[str] = set()
    faulty = [i for i, e in enumerate(rep.episodes) if e.diagnosis is not None and not e.diagnosis.ok]
    pooled_bad = rep.diagnosis is not None and not rep.diagnosis.ok
    for e in rep.episodes:
        if e.diagnosis is None:
            result.notes.append(f"{e.episode_id}: labels not checked against the video: {e.error}")
    # episodes with the same faults share their fix (convention errors are systematic): found once, on them pooled
    same: dict[tuple[str, ...], list[int]] = {}
    for i in faulty:
        same.setdefault(tuple(rep.episodes[i].diagnosis.codes), []).append(i)
    fix_of: dict[int, list[str]] = {}
    for idx in same.values():
        scope = rep.subset(idx)
        d = scope.diagnosis if scope.diagnosis is not None and not scope.diagnosis.ok else rep.episodes[idx[0]].diagnosis
        lines = fixes(d, scope)
        fix_of.update({i: lines for i in idx})
    groups = [(rep.episodes[i].episode_id, rep.episodes[i].diagnosis, fix_of[i]) for i in faulty]
    if pooled_bad and not faulty:  # systematic, only visible pooled
        groups = [("all episodes pooled", rep.diagnosis, fixes(rep.diagnosis, rep))]
    for name, diag, lines in groups:
        text = fault_text(diag, lines)
        if mode == "refuse" and (refuse_codes is None or set(diag.codes) & set(refuse_codes)):
            targets = [name] if name != "all episodes pooled" else [it.name for it in items]
            for t in targets:
                refused.add(t)
                result.failed.append((t, text + " (or set check: warn to import anyway)"))
        else:
            result.warnings.append(f"{name}: {text}")
    return refused


def agreement(diagnosis: Any) -> float:
    """How well labels follow the video, for ranking candidates: the sum of the yaw and pitch correlations and the
    W/S and A/D agreement shares (an untested one counts 0)."""
    s = diagnosis.scores
    return float(sum(np.nan_to_num(float(v)) for v in (s.yaw_r, s.pitch_r, s.fwd_agree, s.side_agree)))


def smallest_fix(candidates: Iterable[tuple[int, C]], score: Callable[[C], Any], baseline: Any,
                 max_size: int | None = None) -> tuple[C, Any] | None:
    """The candidate change that fits with the fewest changed settings: ``candidates`` are ``(size, candidate)``
    (size: the settings it changes); ``score(candidate)`` diagnoses the labels rebuilt under it (None: the
    candidate does not apply). A candidate fits when its diagnosis finds no fault and tested at least what the
    faulty ``baseline`` diagnosis tested (an empty video proves nothing). Sizes are tried smallest first and the
    search stops at the first size with a fit (among those, the best :func:`agreement`, then the first); sizes
    above ``max_size`` are not tried. Returns ``(candidate, diagnosis)`` or None."""
    need = set(getattr(baseline, "checked", ()) or ())
    ordered = sorted(candidates, key=lambda c: c[0])
    for size, group in groupby(ordered, key=lambda c: c[0]):
        if max_size is not None and size > max_size:
            break
        fits = []
        for _, cand in group:
            d = score(cand)
            if d is not None and d.ok and need <= set(d.checked):
                fits.append((-agreement(d), len(fits), cand, d))
        if fits:
            _, _, cand, d = min(fits, key=lambda f: f[:2])
            return cand, d
    return None


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
