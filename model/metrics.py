"""Video quality metrics for evaluating generated rollouts: small pure functions over uint8 RGB frames.

Weight-free (always available):

* ``psnr(a, b) = 10 log10(255^2 / mean((a - b)^2))`` in dB (``inf`` for identical frames);
* ``ssim(a, b)``: Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5), ``C1 = (0.01 L)^2``,
  ``C2 = (0.03 L)^2``, ``L = 255``, on each colour channel, averaged;
* ``flicker_score(frames) = (255 - mean_t mean |f_t - f_{t+1}|) / 255`` (VBench's temporal flickering; 1 = no
  change between frames);
* ``warp_error(frames)``: the mean absolute difference (grey levels) between each frame and the next one warped
  back by DIS optical flow, over pixels that pass a forward-backward consistency check (occlusions excluded):
  low when consecutive frames are explained by motion, high when content pops in and out.

Need weights the user supplies (never downloaded):

* :class:`LPIPS`: LPIPS-Alex (Zhang et al. 2018): AlexNet ``features`` (torchvision's layout, keys
  ``features.{0,3,6,8,10}.{weight,bias}``) and the linear heads of the ``lpips`` package (``lin{0..4}.model.1.weight``),
  from one or two state-dict files (safetensors or ``torch.load(weights_only=True)``);
* :func:`fvd`: the Frechet distance between I3D features of two sets of videos, with a TorchScript I3D feature
  extractor the user supplies (the StyleGAN-V ``i3d_torchscript.pt`` convention: ``model(x, rescale=False,
  resize=True, return_features=True)``, ``x`` float [B, 3, T, H, W] in [-1, 1]).
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images in dB (``inf`` when identical)."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    mse = float(np.mean(d * d))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two uint8 images ``[H, W]`` or ``[H, W, C]`` (module doc), in [-1, 1]."""
    import cv2

    x = np.asarray(a, np.float64)
    y = np.asarray(b, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"ssim: shapes differ {x.shape} vs {y.shape}")
    if x.ndim == 3:
        return float(np.mean([ssim(x[..., c], y[..., c]) for c in range(x.shape[2])]))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(m.mean())


def flicker_score(frames: np.ndarray) -> float:
    """VBench temporal flickering score of a video ``[T, H, W, C]`` uint8 (1: frames do not change)."""
    f = np.asarray(frames, np.float64)
    if len(f) < 2:
        return 1.0
    return float((255.0 - np.abs(np.diff(f, axis=0)).mean()) / 255.0)


def warp_error(frames: np.ndarray, max_fb_px: float = 1.0) -> float:
    """Mean flow-warping error (grey levels) between consecutive frames, occlusion-masked (module doc)."""
    import cv2

    f = np.asarray(frames)
    if len(f) < 2:
        return 0.0
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    grays = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) if x.ndim == 3 else x for x in f]
    h, w = grays[0].shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    errs = []
    for a, b in zip(grays[:-1], grays[1:]):
        fwd = dis.calc(a, b, None)  # a(x) ~ b(x + fwd)
        bwd = dis.calc(b, a, None)
        mx, my = gx + fwd[..., 0], gy + fwd[..., 1]
        warped = cv2.remap(b, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        back = cv2.remap(bwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        ok = np.hypot(fwd[..., 0] + back[..., 0], fwd[..., 1] + back[..., 1]) <= max_fb_px
        ok &= (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        if ok.any():
            errs.append(float(np.abs(warped.astype(np.float64) - a.astype(np.float64))[ok].mean()))
    return float(np.mean(errs)) if errs else math.nan


def frame_curves(generated: np.ndarray, reference: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-frame PSNR (dB) and SSIM of ``generated`` against ``reference`` over their common length."""
    n = min(len(generated), len(reference))
    return [psnr(generated[i], reference[i]) for i in range(n)], [ssim(generated[i], reference[i]) for i in range(n)]


# --------------------------------------------------------------------------------------------------------
# metrics that need weights the user supplies


def _load_state(path: str | os.PathLike) -> dict:
    import torch

    p = os.fspath(path)
    if p.endswith(".safetensors"):
        from safetensors.torch import load_file

        return dict(load_file(p))
    obj = torch.load(p, map_location="cpu", weights_only=True)
    return dict(obj.get("state_dict", obj)) if isinstance(obj, dict) else {}


class LPIPS:
    """LPIPS with the AlexNet backbone (module doc). ``weights``: one or two state-dict files that together hold
    the AlexNet ``features.*`` and the ``lin*.model.1.weight`` heads (``KeyError`` naming what is missing)."""

    CONVS = ((3, 64, 11, 4, 2), (64, 192, 5, 1, 2), (192, 384, 3, 1, 1), (384, 256, 3, 1, 1), (256, 256, 3, 1, 1))
    FEATURE_IDX = (0, 3, 6, 8, 10)

    def __init__(self, *weights: str | os.PathLike, device: str = "cpu") -> None:
        import torch

        state: dict = {}
        for w in weights:
            state.update(_load_state(w))
        self.device = torch.device(device)
        self.convs, self.lins = [], []
        for (cin, cout, k, s, p), idx in zip(self.CONVS, self.FEATURE_IDX):
            conv = torch.nn.Conv2d(cin, cout, k, s, p)
            for name in ("weight", "bias"):
                key = f"features.{idx}.{name}"
                if key not in state:
                    raise KeyError(f"LPIPS weights: missing {key} (the AlexNet backbone, torchvision layout)")
                getattr(conv, name).data.copy_(state[key].float())
            self.convs.append(conv.eval().to(self.device))
        for i, (_, cout, *_r) in enumerate(self.CONVS):
            key = next((k for k in (f"lin{i}.model.1.weight", f"lins.{i}.model.1.weight") if k in state), None)
            if key is None:
                raise KeyError(f"LPIPS weights: missing lin{i}.model.1.weight (the lpips package's linear heads)")
            self.lins.append(state[key].float().reshape(1, cout, 1, 1).to(self.device))
        self.shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1).to(self.device)
        self.scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1).to(self.device)

    def _features(self, x):
        import torch.nn.functional as F

        out = []
        h = (x - self.shift) / self.scale
        for i, conv in enumerate(self.convs):
            h = F.relu(conv(h))
            out.append(h)
            if i in (0, 1):
                h = F.max_pool2d(h, 3, 2)
        return out

    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        """LPIPS distance of two uint8 RGB images ``[H, W, 3]`` (0: identical)."""
        import torch

        def t(img: np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float().div(127.5).sub(1).to(self.device)

        with torch.no_grad():
            total = 0.0
            for fa, fb, lin in zip(self._features(t(a)), self._features(t(b)), self.lins):
                na = fa / (fa.norm(dim=1, keepdim=True) + 1e-10)
                nb = fb / (fb.norm(dim=1, keepdim=True) + 1e-10)
                total += float(((na - nb) ** 2 * lin).sum(dim=1).mean())
        return total


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))`` (the Frechet distance of two Gaussians)."""
    from scipy import linalg

    covmean = np.real(linalg.sqrtm(s1 @ s2))
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def fvd(real: Sequence[np.ndarray], fake: Sequence[np.ndarray], weights: str | os.PathLike, device: str = "cpu") -> float:
    """Frechet video distance of two sets of uint8 videos ``[T, H, W, 3]`` with the TorchScript I3D feature extractor
    ``weights`` (module doc). Meaningful only with many videos per set (hundreds); with few it is reported as is."""
    import torch

    model = torch.jit.load(os.fspath(weights), map_location=device).eval()

    def feats(videos: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for v in videos:
                x = torch.from_numpy(np.ascontiguousarray(v)).permute(3, 0, 1, 2)[None].float().div(127.5).sub(1)
                out.append(model(x.to(device), rescale=False, resize=True, return_features=True).reshape(1, -1).cpu().numpy())
        return np.concatenate(out).astype(np.float64)

    a, b = feats(real), feats(fake)

    def stats(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return f.mean(axis=0), (np.cov(f, rowvar=False) if len(f) > 1 else np.zeros((f.shape[1], f.shape[1])))

    return frechet_distance(*stats(a), *stats(b))


__all__ = ["psnr", "ssim", "flicker_score", "warp_error", "frame_curves", "LPIPS", "frechet_distance", "fvd"]
