"""Camera motion from pixels: per frame pair, the yaw and pitch change (degrees) and the direction of translation.

The method ("rotLS", see ../shared/reference/action-consistency.md) works on grey frames at a reduced size
(160 px wide by default), with OpenCV on the CPU:

1. **Tracks.** Shi-Tomasi corners (``cv2.goodFeaturesToTrack``) of frame ``i-k`` are followed into frame ``i``
   with pyramidal Lucas-Kanade (``cv2.calcOpticalFlowPyrLK``). Points are kept in normalised image coordinates
   ``(x, y) = ((u - cx) / f, (v - cy) / f)`` with ``f = (W / 2) / tan(hfov / 2)`` (square pixels), OpenCV axes
   (x right, y down, z forward).
2. **Rotation.** The instantaneous motion field of a camera rotation ``w = (pitch, yaw, roll)`` (radians; look up
   +, turn right +, the DESIGN.md section 2 signs) at a point ``(x, y)`` is (Longuet-Higgins and Prazdny)::

       du = x*y*pitch - (1 + x^2)*yaw + y*roll
       dv = (1 + y^2)*pitch - x*y*yaw - x*roll

   Roll is fixed at 0 (first-person cameras do not roll) and ``(pitch, yaw)`` solve a trimmed least squares:
   three passes of linear least squares, each keeping the 70 % of tracks with the smallest 2-D residual, so
   that moving NPCs, vehicles and near-field parallax (outliers) do not pull the fit.
3. **Confidence.** A frame is *confident* when at least ``min_tracks`` tracks survive, the median residual of
   the kept tracks is under ``max_residual_px`` pixels and the kept tracks span at least ``min_spread_px``
   horizontally (both at the analysis size). Textureless or blurred frames (mean gradient under
   ``min_texture``) and frames without enough tracks are *unknown*: their estimate is NaN, never a guess.
4. **Translation.** The flow of a translation ``T`` at depth ``Z`` is ``((-Tx + x*Tz) / Z, (-Ty + y*Tz) / Z)``.
   After removing a rotation (the estimated one, or the one the labels imply: the better choice when labels
   exist, because strafing and yawing look alike when depth varies little) the residual flow ``r`` gives::

       lateral_px = -median(r_u) * f                          (> 0: moving right)
       forward_px =  median(x*r_u + y*r_v) / mean(x^2 + y^2) * f   (> 0: moving forward, the field expands)

   and the direction is the larger of the two by magnitude, or ``none`` under ``min_translation_px``.
   Slow footage needs a frame gap ``k`` of 2-4 for enough parallax (``translation_gap``).

Everything here is a pure function of its arrays except :func:`estimate_motion`, which reads a video. Typical
use::

    from capture.motion import estimate_motion, focal_px
    m = estimate_motion("episode/video.mp4", hfov_deg=90.0)
    m.yaw_deg, m.pitch_deg, m.confident          # float64[N] (NaN where unknown), bool[N]; frame 0 is NaN
    fwd, lat = m.translation_evidence(d_pitch_deg, d_yaw_deg)   # derotated by the labelled rotation
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Iterable, Iterator, Sequence

import numpy as np

from capture.settings import Field, settings

#: Translation direction classes, in the order of :func:`direction_codes`.
DIRECTIONS: tuple[str, ...] = ("none", "forward", "back", "left", "right", "unknown")
NONE, FORWARD, BACK, LEFT, RIGHT, UNKNOWN = range(6)


@settings
class MotionConfig:
    """Settings of the estimator. Sizes in pixels are at the analysis width ``width`` (the frames are downscaled
    with an area filter, keeping the aspect ratio)."""

    width: int = Field(160, ge=32, description="analysis width, px")
    max_corners: int = Field(150, ge=8, description="Shi-Tomasi corners tracked per frame pair at most")
    corner_quality: float = Field(0.01, gt=0, le=1, description="corner quality, relative to the strongest corner of the frame")
    corner_min_distance: int = Field(5, ge=1, description="minimum distance between corners, px")
    corner_block: int = Field(5, ge=3, description="corner detection block size, px")
    lk_window: int = Field(11, ge=3, description="Lucas-Kanade window, px")
    lk_levels: int = Field(2, ge=0, le=6, description="Lucas-Kanade pyramid levels")
    lk_min_eig: float = Field(1e-3, ge=0, description="LK's minimum eigenvalue threshold (flat patches are dropped)")
    trim_keep: float = Field(0.7, ge=0.2, le=1, description="share of tracks kept by each trimmed least-squares pass")
    trim_passes: int = Field(3, ge=1, le=10, description="trimmed least-squares passes")
    min_tracks: int = Field(40, ge=3, description="a confident frame keeps at least this many tracks")
    max_residual_px: float = Field(0.5, gt=0, description="a confident frame's median residual is under this, px")
    min_spread_px: float = Field(25.0, ge=0, description="a confident frame's kept tracks span this much horizontally, px")
    min_texture: float = Field(3.0, ge=0, description="mean |gradient| below this is textureless or blurred (unknown), grey levels per px")
    min_translation_px: float = Field(0.1, ge=0, description="translation evidence below this is 'none', px")
    translation_gap: int = Field(1, ge=1, le=8, description="frames between the two images of the translation evidence")
    fit_expansion: bool = Field(True, description="also fit a uniform expansion (forward motion at one depth) beside the rotation")


# --------------------------------------------------------------------------------------------------------
# pure maths


def focal_px(width_px: float, hfov_deg: float) -> float:
    """Focal length in pixels of a pinhole camera ``width_px`` wide with horizontal field of view ``hfov_deg``:
    ``f = (W / 2) / tan(hfov / 2)``."""
    if not 1.0 < float(hfov_deg) < 179.0:
        raise ValueError(f"horizontal field of view must be in (1, 179) degrees, got {hfov_deg}")
    return 0.5 * float(width_px) / np.tan(np.radians(float(hfov_deg)) / 2.0)


def rotation_flow(x: np.ndarray, y: np.ndarray, pitch_rad: float | np.ndarray, yaw_rad: float | np.ndarray,
                  roll_rad: float | np.ndarray = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The instantaneous image motion ``(du, dv)`` (normalised units) of a camera rotation at normalised points
    ``(x, y)``: ``du = x y pitch - (1 + x^2) yaw + y roll``, ``dv = (1 + y^2) pitch - x y yaw - x roll``
    (pitch: look up +, yaw: turn right +, OpenCV image axes x right, y down)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    du = x * y * pitch_rad - (1.0 + x * x) * yaw_rad + y * roll_rad
    dv = (1.0 + y * y) * pitch_rad - x * y * yaw_rad - x * roll_rad
    return du, dv


@dataclass(frozen=True)
class RotationFit:
    """One frame pair's rotation: ``pitch_deg``/``yaw_deg`` (NaN when unknown), the median 2-D residual of the
    kept tracks ``residual_px``, the number of tracks ``tracks``, the horizontal spread of the kept tracks
    ``spread_px`` and ``confident``."""

    pitch_deg: float
    yaw_deg: float
    residual_px: float
    tracks: int
    spread_px: float
    confident: bool


def fit_rotation(x: np.ndarray, y: np.ndarray, du: np.ndarray, dv: np.ndarray, f_px: float,
                 cfg: MotionConfig = MotionConfig()) -> RotationFit:
    """Trimmed least squares of the rotational field (module doc, step 2) to tracks at normalised ``(x, y)``
    moving by ``(du, dv)`` (normalised units); ``f_px`` converts residuals to pixels. Unknown (NaN) with fewer
    than 8 tracks; not confident below the gate of ``cfg``."""
    n = len(x)
    if n < 8:
        return RotationFit(np.nan, np.nan, np.nan, n, 0.0, False)
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    a = np.zeros((2 * n, 3 if cfg.fit_expansion else 2))
    a[:n, 0], a[:n, 1] = x * y, -(1.0 + x * x)
    a[n:, 0], a[n:, 1] = 1.0 + y * y, -x * y
    if cfg.fit_expansion:
        a[:n, 2], a[n:, 2] = x, y
    b = np.concatenate([du, dv]).astype(np.float64)
    keep = np.arange(n)
    sol = np.zeros(a.shape[1])
    for _ in range(max(1, cfg.trim_passes)):
        rows = np.concatenate([keep, keep + n])
        sol, *_ = np.linalg.lstsq(a[rows], b[rows], rcond=None)
        r = a @ sol - b
        r2 = np.hypot(r[:n], r[n:])
        m = max(8, int(round(cfg.trim_keep * n)))
        keep = np.argsort(r2, kind="stable")[:m]
    res_px = float(np.median(r2[keep])) * f_px
    spread_px = float(np.ptp(x[keep])) * f_px
    ok = n >= cfg.min_tracks and res_px < cfg.max_residual_px and spread_px >= cfg.min_spread_px
    return RotationFit(float(np.degrees(sol[0])), float(np.degrees(sol[1])), res_px, n, spread_px, bool(ok))


def translation_evidence(x: np.ndarray, y: np.ndarray, du: np.ndarray, dv: np.ndarray, f_px: float,
                         pitch_deg: float, yaw_deg: float) -> tuple[float, float]:
    """``(forward_px, lateral_px)`` of the flow left after removing the rotation ``(pitch_deg, yaw_deg)``
    (module doc, step 4): forward > 0 when the field expands (moving forward), lateral > 0 when the scene slides
    left (moving right). NaN with fewer than 8 tracks or a non-finite rotation."""
    if len(x) < 8 or not (np.isfinite(pitch_deg) and np.isfinite(yaw_deg)):
        return np.nan, np.nan
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    ru, rv = rotation_flow(x, y, np.radians(pitch_deg), np.radians(yaw_deg))
    ru = np.asarray(du, np.float64) - ru
    rv = np.asarray(dv, np.float64) - rv
    lateral = -float(np.median(ru)) * f_px
    forward = float(np.median(x * ru + y * rv)) / max(float(np.mean(x * x + y * y)), 1e-9) * f_px
    return forward, lateral


def direction_codes(forward_px: np.ndarray, lateral_px: np.ndarray, min_px: float = 0.1) -> np.ndarray:
    """Per-frame translation direction codes (indices into :data:`DIRECTIONS`): the dominant of the forward and
    lateral evidence by magnitude, ``none`` when both are under ``min_px``, ``unknown`` when NaN."""
    f = np.asarray(forward_px, np.float64)
    s = np.asarray(lateral_px, np.float64)
    out = np.full(f.shape, NONE, dtype=np.int8)
    fwd_major = np.abs(f) >= np.abs(s)
    moving = np.maximum(np.abs(f), np.abs(s)) >= min_px
    out[moving & fwd_major & (f > 0)] = FORWARD
    out[moving & fwd_major & (f <= 0)] = BACK
    out[moving & ~fwd_major & (s > 0)] = RIGHT
    out[moving & ~fwd_major & (s <= 0)] = LEFT
    out[~(np.isfinite(f) & np.isfinite(s))] = UNKNOWN
    return out


# --------------------------------------------------------------------------------------------------------
# tracking


def to_gray(frame: np.ndarray, width: int) -> np.ndarray:
    """A frame (RGB uint8 ``[H, W, 3]`` or grey ``[H, W]``) as grey uint8 at ``width`` px wide (area filter;
    height keeps the aspect ratio, rounded to even)."""
    import cv2

    g = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    h, w = g.shape
    if w != width:
        nh = max(2, int(round(h * width / w / 2.0)) * 2)
        g = cv2.resize(g, (width, nh), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(g)


def texture(gray: np.ndarray) -> float:
    """Mean absolute horizontal plus vertical difference of a grey image (grey levels per px): low on
    textureless or blurred frames."""
    g = gray.astype(np.int16)
    return float(np.abs(np.diff(g, axis=1)).mean() + np.abs(np.diff(g, axis=0)).mean())


def track_pair(prev: np.ndarray, cur: np.ndarray, f_px: float, cfg: MotionConfig = MotionConfig()
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Corners of the grey image ``prev`` tracked into ``cur``: ``(x, y, du, dv)`` float64 in normalised
    coordinates (module doc, step 1); empty arrays when nothing can be tracked or an image is textureless."""
    import cv2

    empty = (np.zeros(0),) * 4
    if texture(prev) < cfg.min_texture or texture(cur) < cfg.min_texture:
        return empty
    p0 = cv2.goodFeaturesToTrack(prev, cfg.max_corners, cfg.corner_quality, cfg.corner_min_distance,
                                 blockSize=cfg.corner_block)
    if p0 is None or len(p0) < 8:
        return empty
    p1, st, _ = cv2.calcOpticalFlowPyrLK(
        prev, cur, p0, None, winSize=(cfg.lk_window, cfg.lk_window), maxLevel=cfg.lk_levels,
        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03), minEigThreshold=cfg.lk_min_eig)
    ok = st.reshape(-1) == 1
    if ok.sum() < 8:
        return empty
    a, b = p0.reshape(-1, 2)[ok].astype(np.float64), p1.reshape(-1, 2)[ok].astype(np.float64)
    h, w = prev.shape
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    x, y = (a[:, 0] - cx) / f_px, (a[:, 1] - cy) / f_px
    return x, y, (b[:, 0] - a[:, 0]) / f_px, (b[:, 1] - a[:, 1]) / f_px


# --------------------------------------------------------------------------------------------------------
# per-video result


@dataclass
class CameraMotion:
    """Camera motion of a frame sequence, one row per frame (row ``i``: from frame ``i-1`` to frame ``i``; row 0
    has no motion and is NaN, like an idle first action row).

    ``yaw_deg``/``pitch_deg`` float64[N]: visual rotation (NaN where unknown). ``confident`` bool[N]: passed the
    gate. ``residual_px``, ``spread_px`` float64[N], ``tracks`` int32[N]: the gate's inputs. ``f_px``: focal
    length at the analysis size ``width`` x ``height``; ``hfov_deg`` the field of view used. ``tracks_xy`` keeps
    each frame's tracks (``(x, y, du, dv)`` normalised, for the pair ``(i - translation_gap, i)``) so that
    translation evidence can be computed for any rotation (e.g. the labelled one) without tracking again.
    """

    yaw_deg: np.ndarray
    pitch_deg: np.ndarray
    confident: np.ndarray
    residual_px: np.ndarray
    spread_px: np.ndarray
    tracks: np.ndarray
    f_px: float
    hfov_deg: float
    width: int
    height: int
    config: MotionConfig = field(default_factory=MotionConfig)
    tracks_xy: list = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.yaw_deg)

    @property
    def known(self) -> np.ndarray:
        """bool[N]: frames with a (possibly unconfident) estimate."""
        return np.isfinite(self.yaw_deg)

    def translation_evidence(self, d_pitch_deg: np.ndarray | None = None, d_yaw_deg: np.ndarray | None = None
                             ) -> tuple[np.ndarray, np.ndarray]:
        """``(forward_px, lateral_px)`` float64[N] after removing, per frame, the rotation ``(d_pitch_deg,
        d_yaw_deg)`` (degrees per frame, e.g. the labels; summed over the translation gap) or, when None, the
        visual rotation. NaN where the frame has no tracks."""
        gap = self.config.translation_gap
        n = len(self)
        if d_pitch_deg is None or d_yaw_deg is None:
            pitch, yaw = np.nan_to_num(self.pitch_deg), np.nan_to_num(self.yaw_deg)
            unknown = ~self.known
        else:
            pitch = np.asarray(d_pitch_deg, np.float64).reshape(n)
            yaw = np.asarray(d_yaw_deg, np.float64).reshape(n)
            unknown = np.zeros(n, bool)
        if gap > 1:
            cp, cy = np.concatenate([[0.0], np.cumsum(pitch)]), np.concatenate([[0.0], np.cumsum(yaw)])
            idx = np.arange(n)
            lo = np.maximum(idx - gap + 1, 0)
            pitch, yaw = cp[idx + 1] - cp[lo], cy[idx + 1] - cy[lo]
        fwd = np.full(n, np.nan)
        lat = np.full(n, np.nan)
        for i, tr in enumerate(self.tracks_xy):
            if tr is None or unknown[i]:
                continue
            fwd[i], lat[i] = translation_evidence(*tr, self.f_px, pitch[i], yaw[i])
        return fwd, lat

    def directions(self, d_pitch_deg: np.ndarray | None = None, d_yaw_deg: np.ndarray | None = None) -> np.ndarray:
        """Per-frame translation direction codes (:data:`DIRECTIONS`) of :meth:`translation_evidence`."""
        return direction_codes(*self.translation_evidence(d_pitch_deg, d_yaw_deg), self.config.min_translation_px)


def analyse_frames(frames: Iterable[np.ndarray], hfov_deg: float, cfg: MotionConfig = MotionConfig(),
                   *, keep_tracks: bool = True) -> CameraMotion:
    """:class:`CameraMotion` of a sequence of frames (RGB uint8 ``[H, W, 3]`` or grey ``[H, W]``, any size: they
    are downscaled to ``cfg.width``) seen with horizontal field of view ``hfov_deg``."""
    gap = cfg.translation_gap
    grays: list[np.ndarray] = []
    rows: list[RotationFit] = []
    tracks: list = []
    f_px = np.nan
    for frame in frames:
        g = to_gray(np.asarray(frame), cfg.width)
        if not grays:
            f_px = focal_px(g.shape[1], hfov_deg)
            rows.append(RotationFit(np.nan, np.nan, np.nan, 0, 0.0, False))
            tracks.append(None)
        else:
            x, y, du, dv = track_pair(grays[-1], g, f_px, cfg)
            rows.append(fit_rotation(x, y, du, dv, f_px, cfg))
            if gap == 1:
                tracks.append((x, y, du, dv) if keep_tracks and len(x) >= 8 else None)
            else:
                prev = grays[-gap] if len(grays) >= gap else grays[0]
                tr = track_pair(prev, g, f_px, cfg)
                tracks.append(tr if keep_tracks and len(tr[0]) >= 8 else None)
        grays.append(g)
        if len(grays) > gap:
            grays.pop(0)
    if not rows:
        raise ValueError("analyse_frames: no frames")
    h, w = grays[-1].shape
    conf = np.array([r.confident for r in rows], bool)
    return CameraMotion(
        yaw_deg=np.array([r.yaw_deg for r in rows], np.float64),
        pitch_deg=np.array([r.pitch_deg for r in rows], np.float64),
        confident=conf,
        residual_px=np.array([r.residual_px for r in rows], np.float64),
        spread_px=np.array([r.spread_px for r in rows], np.float64),
        tracks=np.array([r.tracks for r in rows], np.int32),
        f_px=float(f_px), hfov_deg=float(hfov_deg), width=int(w), height=int(h), config=cfg, tracks_xy=tracks,
    )


def iter_gray(path: str | os.PathLike, width: int = 160) -> Iterator[np.ndarray]:
    """Decode a video straight to grey frames ``width`` px wide (ffmpeg's area scaler; cheap at 160 px)."""
    from capture.video import iter_frames

    for _, frame in iter_frames(path, width, None):
        yield to_gray(frame, width)


def estimate_motion(video: str | os.PathLike | Sequence[np.ndarray], hfov_deg: float,
                    cfg: MotionConfig = MotionConfig()) -> CameraMotion:
    """:class:`CameraMotion` of a video file (decoded at ``cfg.width`` px) or of a sequence of frames."""
    if isinstance(video, (str, os.PathLike)):
        return analyse_frames(iter_gray(video, cfg.width), hfov_deg, cfg)
    return analyse_frames(video, hfov_deg, cfg)


def with_gap(cfg: MotionConfig, gap: int) -> MotionConfig:
    """``cfg`` with another translation gap (frames)."""
    return replace(cfg, translation_gap=int(gap))


__all__ = [
    "DIRECTIONS", "MotionConfig", "RotationFit", "CameraMotion", "focal_px", "rotation_flow", "fit_rotation",
    "translation_evidence", "direction_codes", "to_gray", "texture", "track_pair", "analyse_frames", "iter_gray",
    "estimate_motion", "with_gap",
]
