"""Optical-flow measurements of generated clips (OpenCV Farneback) for the steering tests."""

from __future__ import annotations

import numpy as np


def farneback(frames: np.ndarray) -> np.ndarray:
    """Dense flow between consecutive RGB uint8 frames [T, H, W, 3] -> [T-1, H, W, 2] (dx, dy) in pixels."""
    import cv2

    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    return np.stack([cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0) for a, b in zip(gray[:-1], gray[1:])])


def mean_horizontal_flow(frames: np.ndarray, border: int = 4) -> float:
    """Mean dx over all frame pairs and pixels (a border excluded), pixels per frame. Turn right -> negative."""
    f = farneback(frames)[:, border:-border, border:-border]
    return float(f[..., 0].mean())


def mean_divergence(frames: np.ndarray, border: int = 4) -> float:
    """Mean divergence d(dx)/dx + d(dy)/dy of the flow field (per frame): > 0 for an expanding view (zoom in)."""
    f = farneback(frames)
    div = np.gradient(f[..., 0], axis=2) + np.gradient(f[..., 1], axis=1)
    return float(div[:, border:-border, border:-border].mean())


def radial_flow(frames: np.ndarray, border: int = 4) -> float:
    """Mean outward component of the flow (pixels per frame): flow . (p - centre) / |p - centre|. > 0 when the
    image expands about its centre; a more robust expansion measure than the divergence on blurry video."""
    f = farneback(frames)[:, border:-border, border:-border]
    h, w = f.shape[1:3]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ry, rx = yy - (h - 1) / 2, xx - (w - 1) / 2
    norm = np.maximum(np.hypot(rx, ry), 1.0)
    return float(((f[..., 0] * rx + f[..., 1] * ry) / norm).mean())
