"""Action-label consistency: do an episode's labelled actions agree with the camera motion its video shows?

The visual motion comes from :mod:`capture.motion` (rotLS at 160 px). Against it, per window of frames (a clip
or a whole episode), :func:`score_window` measures (reference: ../shared/reference/action-consistency.md, A):

* ``yaw_r``, ``pitch_r``: Spearman correlation of the labelled ``d_yaw``/``d_pitch`` (degrees per frame) with
  the visual rates, on confident frames; ``cross_r``: labelled ``d_pitch`` against visual yaw (high when the
  two mouse axes are swapped);
* ``slope``: trimmed least squares through the origin of visual yaw on labelled yaw (1 when the units and the
  field of view are right; 57.3 when the labels are radians);
* ``lag``: the shift in frames that best aligns labels and video (arg-max over +-6 frames of the correlation of
  first differences of the yaw rates, confident frames only, among the shifts that the rates themselves confirm:
  :func:`best_lag`) and its ``lag_margin`` over lag 0; ``lag = -k``: the labels come k frames late (label row i
  belongs to frame i-k);
* ``fwd_agree``, ``side_agree``: the share of W/S and A/D frames whose translation evidence (the flow left after
  removing the labelled rotation) has the key's sign, over observable frames (no collision, moving);
  ``fwd_n``/``side_n`` count them. For GTA V (driving: S is a brake) the signed ``speed`` replaces W/S and A/D
  (steering) is not a translation.

Per clip, :func:`clip_flags` turns the scores into flags (``yaw_sign``, ``yaw_unexplained``, ``axes_swap``,
``lag``, ``scale``, ``pitch_sign``, ``ws``, ``ad``): *flag, don't reject* (clean clips get flagged now and then);
``strong`` flags (sign, swap, scale) or two flags may reject a clip when the config says so. Per episode and per
import, where convention errors show up systematically, :func:`diagnose` pools the frames and names the fault
and its fix (:class:`Fault`). :class:`ConsistencyCheck` is the curation stage (``curate.consistency``; it
analyses the whole source video in :meth:`~ConsistencyCheck.start`); :func:`check_episode` and
:func:`check_episodes` run the same analysis (:func:`analyse_episode`) on episode folders (``playmill validate
--actions``).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from curation.config import ConsistencyConfig, CurateConfig
from curation.stage import Clip, DropSpan, EpisodeContext, Item, Reject, Stage

if TYPE_CHECKING:
    from capture.motion import CameraMotion

#: Clip flags whose presence alone may reject a clip (``on_clip: reject``).
STRONG_FLAGS: tuple[str, ...] = ("yaw_sign", "axes_swap", "scale", "pitch_sign")
FLAGS: tuple[str, ...] = ("yaw_sign", "yaw_unexplained", "axes_swap", "lag", "scale", "pitch_sign", "ws", "ad")
MAX_LAG = 6
RADIANS = 180.0 / math.pi


# --------------------------------------------------------------------------------------------------------
# labels


@dataclass
class Labels:
    """Per-frame labels of an episode (row i: from frame i-1 to frame i). ``d_pitch``/``d_yaw`` degrees;
    ``fwd``/``side`` int8 in {-1, 0, +1} (S/W, A/D; 0 = neither or both); ``observable`` bool: frames whose
    translation can be seen (not blocked, not standing still)."""

    d_pitch: np.ndarray
    d_yaw: np.ndarray
    fwd: np.ndarray
    side: np.ndarray
    observable: np.ndarray

    def __len__(self) -> int:
        return len(self.d_yaw)

    def copy(self, **changes: np.ndarray) -> "Labels":
        d = {k: np.array(v, copy=True) for k, v in asdict(self).items()}
        d.update(changes)
        return Labels(**d)


def labels_from_arrays(keys: Sequence[str], keyboard: np.ndarray, mouse: np.ndarray, speed: np.ndarray | None = None,
                       collision: np.ndarray | None = None, source: str = "") -> Labels:
    """:class:`Labels` from per-frame arrays: ``keyboard`` [N, K] over ``keys``, ``mouse`` [N, 2] (d_pitch, d_yaw
    degrees), ``speed`` [N] signed forward cm/s, ``collision`` [N]. ``source == "gta"`` uses the sign of
    ``speed`` for forward/back (S brakes a car) and no strafe."""
    kb = np.asarray(keyboard)
    n = len(kb)
    col = {k: kb[:, i].astype(bool) for i, k in enumerate(keys)}
    zero = np.zeros(n, bool)
    w, s, a, d = (col.get(k, zero) for k in ("w", "s", "a", "d"))
    speed_arr = np.zeros(n) if speed is None else np.nan_to_num(np.asarray(speed, np.float64))
    if source == "gta":
        fwd = np.where(speed_arr > 50.0, 1, np.where(speed_arr < -50.0, -1, 0)).astype(np.int8)
        side = np.zeros(n, np.int8)
    else:
        fwd = (w.astype(np.int8) - s.astype(np.int8))
        side = (d.astype(np.int8) - a.astype(np.int8))
    observable = np.ones(n, bool)
    if collision is not None:
        observable &= ~np.asarray(collision, bool)
    if speed is not None:
        v = np.asarray(speed, np.float64)
        observable &= ~(np.isfinite(v) & (np.abs(v) < 1.0) & ~(side != 0))
    m = np.asarray(mouse, np.float64).reshape(n, 2)
    return Labels(m[:, 0].copy(), m[:, 1].copy(), fwd, side, observable)


def labels_from_table(df, keys: Sequence[str], source: str = "") -> Labels:
    """:class:`Labels` of an actions.csv table (``key_<k>``, ``d_pitch``, ``d_yaw``, ``speed``, ``collision``)."""
    kb = np.stack([df[f"key_{k}"].to_numpy() for k in keys], axis=1) if keys else np.zeros((len(df), 0))
    return labels_from_arrays(keys, kb, df[["d_pitch", "d_yaw"]].to_numpy(np.float64),
                              df["speed"].to_numpy(np.float64) if "speed" in df else None,
                              df["collision"].to_numpy() if "collision" in df else None, source)


# --------------------------------------------------------------------------------------------------------
# statistics (pure)


def _rank(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(a)


def spearman(a: np.ndarray, b: np.ndarray, min_n: int = 8) -> float:
    """Spearman rank correlation of two equally long arrays (NaN pairs dropped); NaN when fewer than ``min_n``
    pairs or either side is constant."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < min_n:
        return math.nan
    ra, rb = _rank(a[ok]), _rank(b[ok])
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def pearson(a: np.ndarray, b: np.ndarray, min_n: int = 8) -> float:
    """Pearson correlation (NaN pairs dropped; NaN when fewer than ``min_n`` pairs or a constant side)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < min_n or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return math.nan
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def trimmed_slope(label: np.ndarray, visual: np.ndarray, keep: float = 0.8, passes: int = 3, min_n: int = 8) -> float:
    """Least-squares slope through the origin of ``visual`` on ``label``, dropping the ``1 - keep`` largest
    residuals each pass; NaN with fewer than ``min_n`` pairs or labels that are all zero."""
    x, y = np.asarray(label, np.float64), np.asarray(visual, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < min_n or not np.any(x):
        return math.nan
    idx = np.arange(len(x))
    s = math.nan
    for _ in range(passes):
        xx = x[idx]
        den = float(xx @ xx)
        if den == 0:
            return math.nan
        s = float(xx @ y[idx]) / den
        r = np.abs(y - s * x)
        idx = np.argsort(r, kind="stable")[: max(min_n, int(round(keep * len(x))))]
    return s


def lag_corr(label: np.ndarray, visual: np.ndarray, lag: int, min_n: int = 16) -> float:
    """Pearson correlation of ``label[i]`` with ``visual[i + lag]`` over the overlap (NaN visual values dropped; NaN
    when the shift leaves nothing to compare or fewer than ``min_n`` pairs)."""
    a, b = np.asarray(label, np.float64), np.asarray(visual, np.float64)
    n = len(a)
    if abs(lag) >= n:  # a window shorter than the shift (a short clip): nothing overlaps
        return math.nan
    if lag >= 0:
        return pearson(a[: n - lag], b[lag:], min_n)
    return pearson(a[-lag:], b[: n + lag], min_n)


def best_lag(label: np.ndarray, visual: np.ndarray, max_lag: int = MAX_LAG) -> tuple[int, float, float]:
    """``(lag, corr_at_lag, corr_at_0)``: the shift ``L`` in [-max_lag, max_lag] maximising the first-difference
    correlation ``|c_d(L)| = |corr(diff(label)[i], diff(visual)[i + L])|`` (NaN visual values dropped) among the
    shifts the rates themselves confirm. ``L = -k``: labels are k frames late.

    A shift ``L != 0`` is a candidate only when the correlation of the rates, ``c(L) = corr(label[i],
    visual[i + L])``, has the sign of ``c_d(L)`` and ``|c(L)| > |c(0)|``. First differences make the peak sharp,
    but they need two consecutive known visual values; where few frames are known (a driving video with a
    handful of confident frames) they rest on a dozen pairs, and a noise peak of either sign can beat lag 0. The
    rates use every known frame: when the labels really are shifted, they too fit the video better at ``L`` than
    at 0, with the same sign (``c`` and ``c_d`` of a shifted copy of one signal agree)."""
    dl = np.diff(np.asarray(label, np.float64))
    dv = np.diff(np.asarray(visual, np.float64))
    c0 = lag_corr(dl, dv, 0)
    r0 = lag_corr(label, visual, 0)
    best, cbest = 0, c0
    for lag in range(-max_lag, max_lag + 1):
        c = lag_corr(dl, dv, lag)
        if lag == 0 or not np.isfinite(c):
            continue
        r = lag_corr(label, visual, lag)
        if not (np.isfinite(r) and np.sign(r) == np.sign(c) and (not np.isfinite(r0) or abs(r) > abs(r0))):
            continue  # the rates do not confirm this shift
        if not np.isfinite(cbest) or abs(c) > abs(cbest) + 1e-12:
            best, cbest = lag, c
    return best, cbest, c0


def agreement(label_sign: np.ndarray, evidence: np.ndarray, observable: np.ndarray, min_px: float = 0.1
              ) -> tuple[float, int]:
    """``(share, n)``: of the frames with a non-zero label sign, observable and ``|evidence| >= min_px``, the share
    whose evidence has the label's sign."""
    e = np.asarray(evidence, np.float64)
    sel = (np.asarray(label_sign) != 0) & np.asarray(observable, bool) & np.isfinite(e) & (np.abs(e) >= min_px)
    n = int(sel.sum())
    if n == 0:
        return math.nan, 0
    return float(np.mean(np.sign(e[sel]) == np.sign(np.asarray(label_sign)[sel]))), n


# --------------------------------------------------------------------------------------------------------
# scores of a window of frames


@dataclass
class WindowScores:
    """Scores of one window of frames (module doc). ``confident``: share of confident frames; ``yaw_std_deg``:
    standard deviation of the larger of the labelled and visual yaw rates on confident frames (the window is
    *informative* for rotation when it is over 0.3 degrees); ``pitch_std_deg`` likewise, ``pitch_active`` the
    confident frames with a labelled pitch of at least 0.05 degrees (pitch is informative with 8); ``pitch_yaw_r``:
    labelled pitch against visual yaw; ``yaw_pitch_r``: labelled yaw against visual pitch."""

    frames: int = 0
    confident: float = 0.0
    yaw_r: float = math.nan
    pitch_r: float = math.nan
    cross_r: float = math.nan
    yaw_pitch_r: float = math.nan
    slope: float = math.nan
    lag: int = 0
    lag_margin: float = 0.0
    lag_r: float = math.nan
    fwd_agree: float = math.nan
    fwd_n: int = 0
    side_agree: float = math.nan
    side_n: int = 0
    yaw_std_deg: float = 0.0
    pitch_std_deg: float = 0.0
    pitch_active: int = 0

    @property
    def yaw_informative(self) -> bool:
        return self.yaw_std_deg > 0.3 and np.isfinite(self.yaw_r)

    @property
    def pitch_informative(self) -> bool:
        return np.isfinite(self.pitch_r) and (self.pitch_std_deg > 0.3 or self.pitch_active >= 8)

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


@dataclass
class VisualSeries:
    """What the check needs of a :class:`capture.motion.CameraMotion`: per-frame visual ``yaw``/``pitch``
    (degrees, NaN unknown), ``confident``, and a callable giving ``(forward_px, lateral_px)`` for a labelled
    rotation."""

    yaw: np.ndarray
    pitch: np.ndarray
    confident: np.ndarray
    motion: Any = None  # CameraMotion, for translation evidence
    min_translation_px: float = 0.1

    @classmethod
    def from_motion(cls, m: "CameraMotion") -> "VisualSeries":
        return cls(m.yaw_deg, m.pitch_deg, m.confident, m, m.config.min_translation_px)

    def mirrored(self) -> "VisualSeries":
        """The series of the horizontally mirrored video (yaw and lateral motion change sign)."""
        return VisualSeries(-self.yaw, self.pitch, self.confident, _Mirror(self.motion), self.min_translation_px)

    def evidence(self, d_pitch: np.ndarray, d_yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.yaw)
        if self.motion is None:
            return np.full(n, np.nan), np.full(n, np.nan)
        return self.motion.translation_evidence(d_pitch, d_yaw)


class _Mirror:
    """Translation evidence of a mirrored video from the unmirrored tracks (x -> -x)."""

    def __init__(self, motion: Any) -> None:
        self.motion = motion

    def translation_evidence(self, d_pitch: np.ndarray, d_yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f, s = self.motion.translation_evidence(d_pitch, -np.asarray(d_yaw))
        return f, -s


def score_window(labels: Labels, vis: VisualSeries, sl: slice = slice(None),
                 evidence: tuple[np.ndarray, np.ndarray] | None = None) -> WindowScores:
    """:class:`WindowScores` of frames ``sl`` (``evidence``: precomputed ``(forward_px, lateral_px)`` for the whole
    series given the labelled rotation; computed when None)."""
    ly, lp = labels.d_yaw[sl], labels.d_pitch[sl]
    vy, vp, conf = vis.yaw[sl], vis.pitch[sl], vis.confident[sl]
    n = len(ly)
    g = conf & np.isfinite(vy)
    out = WindowScores(frames=n, confident=float(g.mean()) if n else 0.0)
    if g.sum() >= 8:
        out.yaw_std_deg = float(max(np.std(ly[g]), np.std(vy[g])))
        out.pitch_std_deg = float(max(np.std(lp[g]), np.std(vp[g])))
        out.pitch_active = int(np.sum(np.abs(lp[g]) >= 0.05))
        out.yaw_r = spearman(ly[g], vy[g])
        out.pitch_r = spearman(lp[g], vp[g])
        out.cross_r = spearman(lp[g], vy[g])
        out.yaw_pitch_r = spearman(ly[g], vp[g])
        big = g & ((np.abs(ly) > 0.2) | (np.abs(vy) > 0.2))
        out.slope = trimmed_slope(ly[big], vy[big])
    lag, c_l, c_0 = best_lag(ly, np.where(conf & np.isfinite(vy), vy, np.nan))  # confident frames only
    out.lag, out.lag_r = lag, c_l
    out.lag_margin = float(abs(c_l) - abs(c_0)) if np.isfinite(c_l) and np.isfinite(c_0) else 0.0
    if evidence is None:
        fwd_e, lat_e = vis.evidence(labels.d_pitch, labels.d_yaw)
    else:
        fwd_e, lat_e = evidence
    mpx = vis.min_translation_px
    out.fwd_agree, out.fwd_n = agreement(labels.fwd[sl], fwd_e[sl], labels.observable[sl], mpx)
    out.side_agree, out.side_n = agreement(labels.side[sl], lat_e[sl], labels.observable[sl], mpx)
    return out


def clip_flags(s: WindowScores) -> list[str]:
    """Flags of one clip's scores (thresholds of the reference measurements)."""
    flags: list[str] = []
    if s.yaw_informative:
        if s.yaw_r < -0.3:
            flags.append("yaw_sign")
        elif s.yaw_r < 0.3:
            flags.append("yaw_unexplained")
        if np.isfinite(s.cross_r) and s.cross_r > 0.3 and s.cross_r > s.yaw_r + 0.2:
            flags.append("axes_swap")
        if s.lag != 0 and s.lag_margin > 0.2:
            flags.append("lag")
        if s.yaw_r >= 0.3 and np.isfinite(s.slope) and not 0.5 <= s.slope <= 2.0:
            flags.append("scale")
    if s.pitch_informative and s.pitch_r < -0.3:
        flags.append("pitch_sign")
    if s.fwd_n >= 8 and s.fwd_agree < 0.5:
        flags.append("ws")
    if s.side_n >= 8 and s.side_agree < 0.5:
        flags.append("ad")
    return flags


def clip_rejected(flags: Sequence[str]) -> bool:
    """``on_clip: reject`` rule: a strong flag, or two flags."""
    return any(f in STRONG_FLAGS for f in flags) or len(flags) >= 2


# --------------------------------------------------------------------------------------------------------
# diagnosis


@dataclass(frozen=True)
class Fault:
    """A convention error: ``code`` (machine name), ``what`` (what is wrong, with the measured numbers) and
    ``fix`` (what to change in the import)."""

    code: str
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.what}; fix: {self.fix}"


@dataclass
class Diagnosis:
    """The verdict on a set of frames (an episode or an import). ``ok``: no fault found; ``faults``: what is
    wrong and how to fix it; ``scores``: the pooled :class:`WindowScores`; ``checked``: what could be tested
    (rotation, pitch, scale, keys); ``clip_flag_rates``: the share of 64-frame windows carrying each flag."""

    ok: bool
    faults: list[Fault] = field(default_factory=list)
    scores: WindowScores = field(default_factory=WindowScores)
    checked: list[str] = field(default_factory=list)
    clip_flag_rates: dict[str, float] = field(default_factory=dict)

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self.faults]

    def summary(self) -> str:
        if self.ok:
            s = self.scores
            return (f"labels agree with the video (yaw r {_f(s.yaw_r)}, slope {_f(s.slope)}, pitch r {_f(s.pitch_r)}, "
                    f"W/S {_f(s.fwd_agree)} of {s.fwd_n}, A/D {_f(s.side_agree)} of {s.side_n}; checked "
                    f"{', '.join(self.checked) or 'nothing'})")
        return "; ".join(str(f) for f in self.faults)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "faults": [asdict(f) for f in self.faults], "scores": self.scores.to_dict(),
                "checked": list(self.checked), "clip_flag_rates": dict(self.clip_flag_rates)}


def _f(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.2f}"


def _scale_fault(slope: float, fov_deg: float) -> Fault:
    """Name the unit error of a mouse slope (visual / labelled)."""
    fov = f" (assuming a {fov_deg:g} degree horizontal field of view: a wrong FOV scales this too)"
    if abs(slope / RADIANS - 1.0) < 0.25:
        return Fault("mouse_radians", f"mouse labels look like radians: the video turns {slope:.1f}x the labelled "
                     f"angle{fov}", "multiply d_pitch and d_yaw by 57.2958 (180/pi)")
    if abs(slope * RADIANS - 1.0) < 0.25:
        return Fault("mouse_degrees_as_radians", f"mouse labels are {1 / slope:.1f}x the turning seen{fov}",
                     "divide d_pitch and d_yaw by 57.2958 (they were converted to degrees twice)")
    if slope < 0.5:
        return Fault("mouse_counts", f"mouse labels are {1 / slope:.2f}x the turning seen (raw device counts?){fov}",
                     f"multiply d_pitch and d_yaw by {slope:.3g} (degrees per count), or import mouse_dx/mouse_dy "
                     "with the game's sensitivity")
    return Fault("mouse_scale", f"mouse labels are scaled: the video turns {slope:.2f}x the labelled angle{fov}",
                 f"multiply d_pitch and d_yaw by {slope:.3g}")


def diagnose(labels: Labels, vis: VisualSeries, *, fov_known: bool = True, fov_deg: float = 90.0,
             source: str = "", window: int = 64) -> Diagnosis:
    """Pool all frames and name the convention errors of the labels, with their fixes (module doc).

    Tests, in order: rows shifted (the lag), pitch and yaw swapped, yaw sign, labels that do not follow the video
    at all, pitch sign, mouse scale (only when ``fov_known``), W/S and A/D (or the signed speed for GTA V). A
    horizontally mirrored video shows as a flipped yaw sign together with swapped A/D. The share of ``window``-
    frame windows carrying each clip flag is reported beside."""
    checked: list[str] = []
    faults: list[Fault] = []
    s = score_window(labels, vis)
    # 1. rows shifted: realign before the other tests
    lab = labels
    if s.yaw_std_deg > 0.3 and s.lag != 0 and s.lag_margin > 0.08 and abs(s.lag_r) > 0.3:
        k = -s.lag
        late = "late" if k > 0 else "early"
        faults.append(Fault("shift", f"actions are {abs(k)} frame(s) {late} (yaw correlation {abs(s.lag_r):.2f} at a "
                                     f"{abs(k)}-frame shift vs {abs(s.lag_r) - s.lag_margin:.2f} as recorded)",
                            f"move every action row {abs(k)} row(s) {'earlier' if k > 0 else 'later'} (row i takes "
                            f"row {'i+' if k > 0 else 'i-'}{abs(k)})"))
        lab = shift_labels(labels, -k)
        s = score_window(lab, vis)
    if s.yaw_std_deg > 0.3:
        checked.append("rotation")
    swapped = False
    # 2. pitch and yaw swapped: labelled pitch follows the visual yaw
    if (s.yaw_std_deg > 0.3 and np.isfinite(s.cross_r) and abs(s.cross_r) > 0.5
            and abs(s.cross_r) > (abs(s.yaw_r) if np.isfinite(s.yaw_r) else 0.0) + 0.2):
        swapped = True
        extra = ""
        if source == "sekai":
            extra = " (for Sekai: the OpenCV -> Unreal axis conversion applied twice does this)"
        faults.append(Fault("axes_swap", f"pitch and yaw are swapped: labelled pitch follows the visual yaw (r "
                                         f"{s.cross_r:.2f}) better than labelled yaw does (r {_f(s.yaw_r)}){extra}",
                            "swap the d_pitch and d_yaw columns" + (" and negate the new d_yaw" if s.cross_r < 0 else "")))
        lab = lab.copy(d_pitch=lab.d_yaw, d_yaw=-lab.d_pitch if s.cross_r < 0 else lab.d_pitch)
        s = score_window(lab, vis)
    elif s.yaw_std_deg > 0.3 and np.isfinite(s.yaw_r):
        if np.std(lab.d_yaw) < 1e-9:
            faults.append(Fault("mouse_missing", f"the video turns (visual yaw std {s.yaw_std_deg:.2f} deg/frame) but "
                                                 "d_yaw is constant", "map the mouse or camera columns of the import"))
        elif s.yaw_r < -0.3:
            pass  # sign, below (possibly with a mirrored video)
        elif s.yaw_r < 0.5:  # pooled over an episode, clean labels correlate far better (0.9+ measured)
            hint = " (for Sekai: the OpenCV -> Unreal axis conversion applied twice does this)" if source == "sekai" else ""
            faults.append(Fault("unrelated", f"mouse labels do not follow the video (yaw r {s.yaw_r:.2f}, pitch-for-yaw "
                                             f"r {_f(s.cross_r)}){hint}", "check the column mapping, the axis conventions "
                                             "and the frame alignment of the import: these labels do not describe this "
                                             "video's camera"))
    flip_yaw = s.yaw_std_deg > 0.3 and np.isfinite(s.yaw_r) and s.yaw_r < -0.3
    if flip_yaw:
        lab = lab.copy(d_yaw=-lab.d_yaw)
    flip_pitch = s.pitch_informative and s.pitch_r < -0.3
    if s.pitch_informative:
        checked.append("pitch")
    if flip_pitch:
        faults.append(Fault("pitch_sign", f"pitch sign is flipped (r {s.pitch_r:.2f})",
                            "negate d_pitch (look up must be +)"))
        lab = lab.copy(d_pitch=-lab.d_pitch)
    s2 = score_window(lab, vis) if (flip_yaw or flip_pitch) else s
    # scale
    if fov_known and s2.yaw_std_deg > 0.3 and np.isfinite(s2.yaw_r) and s2.yaw_r >= 0.5 and np.isfinite(s2.slope):
        checked.append("scale")
        if not 0.7 <= s2.slope <= 1.43:
            faults.append(_scale_fault(s2.slope, fov_deg))
    # keys, after correcting the rotation (the labelled rotation removes the turning from the flow, so it must be
    # in the video's units: scaled by the measured slope, which also absorbs an unknown field of view)
    if s2.yaw_std_deg > 0.3 and np.isfinite(s2.yaw_r) and s2.yaw_r >= 0.5 and np.isfinite(s2.slope) and s2.slope > 0:
        s2 = score_window(lab.copy(d_pitch=lab.d_pitch * s2.slope, d_yaw=lab.d_yaw * s2.slope), vis)
    side_bad = False
    for name, agree, n, fix_sw, code in (("W/S", s2.fwd_agree, s2.fwd_n, "swap the W and S key columns", "ws"),
                                         ("A/D", s2.side_agree, s2.side_n, "swap the A and D key columns", "ad")):
        if n < 8:
            continue
        checked.append(name)
        if name == "W/S" and source == "gta":
            name, fix_sw = "signed speed", "negate speed (forward must be +)"
        if agree < 0.3:
            if code == "ad":
                side_bad = True
            faults.append(Fault(f"{code}_swap", f"{name} keys are swapped: {agree:.0%} of {n} frames move the way the "
                                                "key says", fix_sw))
        elif agree < 0.7:
            faults.append(Fault(f"{code}_unrelated", f"{name} keys do not match the motion: {agree:.0%} of {n} frames "
                                                     "move the way the key says", "check the key column mapping (keys "
                                                     "on the wrong frames, or keys that are not movement)"))
    if flip_yaw:
        if side_bad and not flip_pitch:
            faults = [f for f in faults if f.code != "ad_swap"]
            faults.append(Fault("mirrored", f"the video looks mirrored left-right: yaw (r {s.yaw_r:.2f}) and A/D are "
                                            "both reversed", "flip the video horizontally (or negate d_yaw and swap "
                                            "the A and D columns)"))
        else:
            unseen = "" if "A/D" in checked else " (or the video is mirrored left-right: no strafing to tell)"
            faults.append(Fault("yaw_sign", f"yaw sign is flipped (r {s.yaw_r:.2f}){unseen}",
                                "negate d_yaw (turning right must be +)"))
    # clip flag rates, for the report
    n = len(labels)
    ev = vis.evidence(labels.d_pitch, labels.d_yaw)
    counts = {f: 0 for f in FLAGS}
    windows = 0
    for start in range(0, max(1, n - window + 1), window):
        ws = score_window(labels, vis, slice(start, start + window), ev)
        if not (ws.yaw_informative or ws.fwd_n >= 8 or ws.side_n >= 8):
            continue
        windows += 1
        for f in clip_flags(ws):
            counts[f] += 1
    rates = {f: c / windows for f, c in counts.items()} if windows else {}
    scores = score_window(labels, vis) if faults else s2
    return Diagnosis(ok=not faults, faults=faults, scores=scores, checked=checked, clip_flag_rates=rates)


def shift_labels(labels: Labels, k: int) -> Labels:
    """Labels moved ``k`` rows later (``k < 0``: earlier); vacated rows are idle."""
    def sh(a: np.ndarray) -> np.ndarray:
        out = np.zeros_like(a)
        if k > 0:
            out[k:] = a[:-k]
        elif k < 0:
            out[:k] = a[-k:]
        else:
            out[:] = a
        return out
    return Labels(sh(labels.d_pitch), sh(labels.d_yaw), sh(labels.fwd), sh(labels.side), labels.observable.copy())


# --------------------------------------------------------------------------------------------------------
# episodes


def episode_fov(meta_config: Mapping[str, Any], fallback: float | None) -> tuple[float, bool]:
    """``(hfov_deg, known)``: meta.json ``config.fov_deg`` (or ``hfov_deg``), else ``fallback``, else 90 unknown."""
    for k in ("fov_deg", "hfov_deg"):
        v = meta_config.get(k) if isinstance(meta_config, Mapping) else None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and 1.0 < float(v) < 179.0:
            return float(v), True
    if fallback is not None:
        return float(fallback), True
    return 90.0, False


@dataclass
class EpisodeConsistency:
    """The check of one episode: its ``episode_id``, ``source``, ``diagnosis``, the ``fov_deg`` used (and whether
    it was ``fov_known``), the visual series and labels (for clip scores and reports), or ``error`` when the
    episode could not be read."""

    episode_id: str
    source: str
    diagnosis: Diagnosis | None
    fov_deg: float = 90.0
    fov_known: bool = False
    labels: Labels | None = None
    visual: VisualSeries | None = None
    evidence: tuple[np.ndarray, np.ndarray] | None = None
    error: str | None = None

    def clip_scores(self, first: int, last: int) -> tuple[WindowScores, list[str]]:
        """Scores and flags of source frames ``first..last`` (inclusive)."""
        assert self.labels is not None and self.visual is not None
        s = score_window(self.labels, self.visual, slice(int(first), int(last) + 1), self.evidence)
        flags = clip_flags(s)
        if not self.fov_known:
            flags = [f for f in flags if f != "scale"]
        return s, flags


def analyse_episode(video: str | os.PathLike, labels: Labels, config: ConsistencyConfig = ConsistencyConfig(), *,
                    episode_id: str, source: str, meta_config: Mapping[str, Any]) -> EpisodeConsistency:
    """The check of one episode: decode ``video`` at 160 px, estimate the camera motion (:mod:`capture.motion`) and
    diagnose ``labels`` against it. ``ValueError`` when the video and the labels differ in length;
    :class:`capture.video.VideoError` when the video cannot be read."""
    from capture.motion import MotionConfig, estimate_motion

    fov, known = episode_fov(meta_config, config.fov_deg)
    m = estimate_motion(video, fov, MotionConfig(translation_gap=config.translation_gap))
    if len(m) != len(labels):
        raise ValueError(f"video has {len(m)} frames, the actions {len(labels)} rows")
    vis = VisualSeries.from_motion(m)
    diag = diagnose(labels, vis, fov_known=known, fov_deg=fov, source=source)
    return EpisodeConsistency(episode_id, source, diag, fov, known, labels, vis,
                              vis.evidence(labels.d_pitch, labels.d_yaw))


#: The side file of the stage: per episode, a sample of labelled and visual rotation rates (for the report).
SAMPLES_FILE = "consistency.parquet"


class ConsistencyCheck(Stage):
    """Stage ``consistency`` (config ``consistency``): in :meth:`start`, :func:`analyse_episode` on the source video
    (``ep.video``; a video it cannot read is left to the decode stage to reject, and the clips of an episode that
    was not analysed get NaN scores); the diagnosis goes to
    ``ep.notes["consistency"]`` and a sample of labelled vs visual rotation to the side file ``consistency.parquet``;
    an episode whose labels fail is rejected when ``on_episode`` is ``reject`` (its faults and fixes are the reason).
    Each clip gets the ``check_*`` columns of its frames (:meth:`clip_columns`); with ``on_clip: reject`` a clip with
    a strong flag or two flags is dropped (a clip record). Its manifest section: the config, each episode's
    diagnosis, per source the episodes checked and failed and the faults found, and the samples file."""

    name = "consistency"
    side_files = (SAMPLES_FILE,)

    @classmethod
    def enabled(cls, cfg: CurateConfig) -> bool:
        return cfg.consistency.enabled

    def clip_fields(self) -> list:
        import pyarrow as pa

        f32 = pa.float32()
        return [pa.field("check_confident", f32), pa.field("check_yaw_r", f32), pa.field("check_pitch_r", f32),
                pa.field("check_cross_r", f32), pa.field("check_slope", f32), pa.field("check_lag", pa.int16()),
                pa.field("check_fwd_agree", f32), pa.field("check_side_agree", f32),
                pa.field("check_flags", pa.list_(pa.string()))]

    def start(self, ep: EpisodeContext) -> None:
        from capture.video import VideoError

        super().start(ep)
        self.check: EpisodeConsistency | None = None
        if ep.video is None:  # a stream without its source video: nothing to compare the labels with
            return
        a = ep.actions
        labels = labels_from_arrays(ep.params.keys, a.keyboard, a.mouse, a.speed, a.collision, ep.meta.source)
        try:
            self.check = analyse_episode(ep.video, labels, self.cfg.consistency, episode_id=ep.episode_id,
                                         source=ep.meta.source, meta_config=ep.meta.config)
        except (VideoError, ValueError):
            return
        diag = self.check.diagnosis
        ep.notes["consistency"] = {**diag.to_dict(), "fov_deg": self.check.fov_deg, "fov_known": self.check.fov_known}
        write_samples(ep.tmp / SAMPLES_FILE, self.check)
        if not diag.ok and self.cfg.consistency.on_episode == "reject":
            raise Reject(self.name, "action labels disagree with the video: " + diag.summary())

    def process(self, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        for it in items:
            if isinstance(it, Clip):
                cols = clip_columns(self.check, it.first, it.last)
                if self.cfg.consistency.on_clip == "reject" and clip_rejected(cols["check_flags"]):
                    it = DropSpan(it.first, it.last, self.name,
                                  f"clip labels disagree with the video: flags {cols['check_flags']} (yaw r "
                                  f"{cols['check_yaw_r']:.2f}, slope {cols['check_slope']:.2f})", kind="clip")
                else:
                    it.columns.update(cols)
            out.append(it)
        return out

    def summarise(self, outcomes: Mapping[str, Mapping[str, Any]], work_dirs: Mapping[str, Path],
                  out_dir: Path) -> dict[str, Any]:
        per_ep = {e: o["notes"]["consistency"] for e, o in sorted(outcomes.items())
                  if (o.get("notes") or {}).get("consistency")}
        by_source: dict[str, dict[str, Any]] = {}
        for e, d in per_ep.items():
            s = by_source.setdefault(outcomes[e].get("source") or "unknown", {"episodes": 0, "failed": 0, "faults": {}})
            s["episodes"] += 1
            s["failed"] += int(not d["ok"])
            for f in d["faults"]:
                s["faults"][f["code"]] = s["faults"].get(f["code"], 0) + 1
        wrote = concat_samples(out_dir / SAMPLES_FILE, [work_dirs[e] / SAMPLES_FILE for e in sorted(work_dirs)])
        return {"config": self.cfg.consistency.to_dict(), "file": SAMPLES_FILE if wrote else None,
                "by_source": dict(sorted(by_source.items())), "episodes": per_ep}


def clip_columns(ec: EpisodeConsistency | None, first: int, last: int) -> dict[str, Any]:
    """The ``check_*`` values of the clip of source frames ``first..last`` (NaN/empty when the check did not run)."""
    if ec is None or ec.labels is None:
        return empty_clip_columns()
    s, flags = ec.clip_scores(first, last)
    return {"check_confident": s.confident, "check_yaw_r": s.yaw_r, "check_pitch_r": s.pitch_r,
            "check_cross_r": s.cross_r, "check_slope": s.slope, "check_lag": int(s.lag),
            "check_fwd_agree": s.fwd_agree, "check_side_agree": s.side_agree, "check_flags": flags}


def empty_clip_columns() -> dict[str, Any]:
    nan = math.nan
    return {"check_confident": nan, "check_yaw_r": nan, "check_pitch_r": nan, "check_cross_r": nan,
            "check_slope": nan, "check_lag": 0, "check_fwd_agree": nan, "check_side_agree": nan, "check_flags": []}


def write_samples(path: Path, ec: EpisodeConsistency, max_rows: int = 300) -> None:
    """Up to ``max_rows`` confident frames (evenly spaced) of labelled and visual yaw and pitch rates, degrees."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    vis, lab = ec.visual, ec.labels
    assert vis is not None and lab is not None
    idx = np.flatnonzero(vis.confident & np.isfinite(vis.yaw))
    if len(idx) > max_rows:
        idx = idx[np.linspace(0, len(idx) - 1, max_rows).round().astype(int)]
    pq.write_table(pa.table({
        "episode_id": pa.array([ec.episode_id] * len(idx), pa.string()),
        "source": pa.array([ec.source] * len(idx), pa.string()),
        "frame": pa.array(idx.astype(np.int64)),
        "label_yaw": pa.array(lab.d_yaw[idx].astype(np.float32)), "visual_yaw": pa.array(vis.yaw[idx].astype(np.float32)),
        "label_pitch": pa.array(lab.d_pitch[idx].astype(np.float32)),
        "visual_pitch": pa.array(vis.pitch[idx].astype(np.float32)),
    }), path)


def concat_samples(target: Path, files: Sequence[Path]) -> bool:
    """Concatenate the episodes' sample files that exist into ``target`` (atomically); False (and no target) when
    there are none."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(f) for f in files if f.is_file()]
    if not tables:
        target.unlink(missing_ok=True)
        return False
    tmp = target.with_name(f".{target.name}.tmp")
    pq.write_table(pa.concat_tables(tables), tmp)
    os.replace(tmp, target)
    return True


def check_episode(path: str | os.PathLike, config: ConsistencyConfig = ConsistencyConfig()) -> EpisodeConsistency:
    """Run the check on one episode folder (no curation). Never raises for a bad episode: ``error`` says why."""
    from capture.episode import read_episode

    p = Path(path)
    try:
        ep = read_episode(p)
    except Exception as e:  # malformed episode: the validator's message
        return EpisodeConsistency(p.name, "", None, error=str(e).splitlines()[0])
    labels = labels_from_table(ep.actions, ep.action_space.keys, ep.meta.source)
    try:
        return analyse_episode(ep.video_path, labels, config, episode_id=ep.meta.episode_id, source=ep.meta.source,
                               meta_config=ep.meta.config)
    except Exception as e:
        return EpisodeConsistency(ep.meta.episode_id, ep.meta.source, None, error=f"{type(e).__name__}: {e}")


@dataclass
class ImportConsistency:
    """The check of a set of episodes: ``episodes`` (each :class:`EpisodeConsistency`) and, per source,
    ``imports[source]``: the diagnosis of all its frames pooled (convention errors are systematic)."""

    episodes: list[EpisodeConsistency]
    imports: dict[str, Diagnosis]

    @property
    def ok(self) -> bool:
        return all(e.diagnosis is not None and e.diagnosis.ok for e in self.episodes) and \
            all(d.ok for d in self.imports.values())


def pool(checks: Iterable[EpisodeConsistency]) -> tuple[Labels, VisualSeries] | None:
    """Concatenate the labels and visual series of several episodes (idle separator rows between them, so that
    lags never cross an episode boundary)."""
    labs, viss = [], []
    for c in checks:
        if c.labels is None or c.visual is None:
            continue
        labs.append(c.labels)
        viss.append(c.visual)
    if not labs:
        return None
    gap = MAX_LAG + 1
    z = np.zeros(gap)

    def cat(arrs: list[np.ndarray], fill: Any, dtype: Any) -> np.ndarray:
        parts: list[np.ndarray] = []
        for a in arrs:
            parts += [np.asarray(a), np.full(gap, fill, dtype=dtype)]
        return np.concatenate(parts)

    lab = Labels(cat([l.d_pitch for l in labs], 0.0, float), cat([l.d_yaw for l in labs], 0.0, float),
                 cat([l.fwd for l in labs], 0, np.int8), cat([l.side for l in labs], 0, np.int8),
                 cat([l.observable for l in labs], False, bool))
    del z
    motions = [v.motion for v in viss]
    vis = VisualSeries(cat([v.yaw for v in viss], np.nan, float), cat([v.pitch for v in viss], np.nan, float),
                       cat([v.confident for v in viss], False, bool), _Pooled(motions, [len(l) for l in labs], gap),
                       viss[0].min_translation_px)
    return lab, vis


class _Pooled:
    """Translation evidence over concatenated episodes."""

    def __init__(self, motions: list, lengths: list[int], gap: int) -> None:
        self.motions, self.lengths, self.gap = motions, lengths, gap

    def translation_evidence(self, d_pitch: np.ndarray, d_yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fs, ss = [], []
        i = 0
        for m, n in zip(self.motions, self.lengths):
            f, s = (m.translation_evidence(d_pitch[i:i + n], d_yaw[i:i + n]) if m is not None
                    else (np.full(n, np.nan), np.full(n, np.nan)))
            fs += [f, np.full(self.gap, np.nan)]
            ss += [s, np.full(self.gap, np.nan)]
            i += n + self.gap
        return np.concatenate(fs), np.concatenate(ss)


def check_episodes(paths: Iterable[str | os.PathLike], config: ConsistencyConfig = ConsistencyConfig(),
                   progress: bool = False) -> ImportConsistency:
    """Check every episode folder (or folder of episodes) of ``paths`` and pool each source's episodes into an
    import-level diagnosis."""
    from tqdm.auto import tqdm

    from capture.episode import list_episodes

    folders: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if (p / "meta.json").is_file() or (p / "actions.csv").is_file():
            folders.append(p)
        elif p.is_dir():
            folders += list_episodes(p)
        else:
            folders.append(p)
    checks = [check_episode(f, config) for f in tqdm(folders, desc="check actions", unit="episode",
                                                     disable=not progress)]
    by_source: dict[str, list[EpisodeConsistency]] = {}
    for c in checks:
        if c.diagnosis is not None:
            by_source.setdefault(c.source, []).append(c)
    imports: dict[str, Diagnosis] = {}
    for src, cs in sorted(by_source.items()):
        pooled = pool(cs)
        if pooled is not None and len(cs) > 1:
            imports[src] = diagnose(*pooled, fov_known=all(c.fov_known for c in cs), fov_deg=cs[0].fov_deg,
                                    source=src)
    return ImportConsistency(checks, imports)


__all__ = [
    "ConsistencyConfig", "Labels", "labels_from_arrays", "labels_from_table", "spearman", "pearson",
    "trimmed_slope", "lag_corr", "best_lag", "agreement", "WindowScores", "VisualSeries", "score_window", "clip_flags",
    "clip_rejected", "Fault", "Diagnosis", "diagnose", "shift_labels", "episode_fov", "EpisodeConsistency",
    "analyse_episode", "ConsistencyCheck", "clip_columns", "empty_clip_columns", "write_samples", "concat_samples",
    "SAMPLES_FILE", "check_episode", "ImportConsistency", "pool", "check_episodes",
    "FLAGS", "STRONG_FLAGS",
]
