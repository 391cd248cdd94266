"""Sampling the base (bidirectional) world model: a first frame and per-frame actions -> a video.

    x_1 ~ N(0, I)                                               latents [1, 16, F, h, w], F = 1 + (T - 1) / 4
    s_i = shift * u_i / (1 + (shift - 1) u_i),  u_i = 1 - i / N   noise levels from 1 to 0 (the training shift)
    x_{s_{i+1}} = x_{s_i} + (s_{i+1} - s_i) * DiT(x_{s_i}, 1000 s_i, c, y, kb, m)      N Euler steps of dx/ds = v
    video = VAE.decode(x_0)

with the conditions of training (:mod:`model.train`): ``y`` = [mask ; VAE.encode([frame0, 0, ...])],
``c`` = ImageEncoder(frame0), and the actions mapped by the checkpoint's
:class:`~model.conditions.ConditionSpec` (its keyboard mapping and mouse scale). All frames are denoised
together (bidirectional attention); the causal few-step student is the distillation stage's business.

CLI: ``playmill generate --model base --checkpoint RUN --image x.png --actions a.csv -o out.mp4`` calls
:func:`generate_base`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from capture.errors import InputError

from .bundle import Bundle, load_bundle
from .conditions import ConditionError, ConditionSpec, actions_from_table, check_num_frames
from .dit import i2v_condition
from .latents import encode_condition
from .schedule import shift_sigma


@dataclass
class GenerateResult:
    """frames: RGB uint8 [T, H, W, 3]; path: the mp4 written (or None); latents: [1, 16, F, h, w]."""

    frames: np.ndarray
    path: Path | None
    latents: torch.Tensor
    fps: float


def load_image(image: str | os.PathLike[str] | np.ndarray, height: int, width: int) -> np.ndarray:
    """An RGB uint8 image [H, W, 3] (or a path to one) resized to cover ``height`` x ``width`` and centre-cropped
    (Matrix-Game 2.0's resize-crop)."""
    import cv2

    if isinstance(image, (str, os.PathLike)):
        if not os.path.isfile(image):
            raise FileNotFoundError(f"cannot read image {image}: no such file")
        bgr = cv2.imread(os.fspath(image), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"cannot read image {image}: not an image OpenCV can decode (expected a PNG or JPEG)")
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    else:
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image must be uint8 [H, W, 3], got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    if (h, w) != (height, width):
        scale = max(height / h, width / w)
        nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        y0, x0 = (nh - height) // 2, (nw - width) // 2
        img = img[y0 : y0 + height, x0 : x0 + width]
    return np.ascontiguousarray(img)


def load_actions(actions: Any, spec: ConditionSpec) -> tuple[np.ndarray, np.ndarray]:
    """Dataset-space actions (keyboard [T, K_dataset], mouse [T, 2] degrees) from a DataFrame, a CSV path, a
    mapping of columns (``key_<k>``/``<k>``, ``d_pitch``, ``d_yaw``), ``{"keyboard": ..., "mouse": ...}`` or a
    ``(keyboard, mouse)`` tuple of arrays."""
    if isinstance(actions, tuple) and len(actions) == 2:
        kb, mouse = (np.asarray(a, np.float32) for a in actions)
    elif isinstance(actions, Mapping) and "keyboard" in actions:
        kb = np.asarray(actions["keyboard"], np.float32)
        mouse = np.asarray(actions.get("mouse", np.zeros((len(kb), 2))), np.float32)
    else:
        return actions_from_table(actions, spec)
    if kb.ndim != 2 or kb.shape[1] != len(spec.dataset_keys):
        raise ConditionError(f"keyboard must be [T, {len(spec.dataset_keys)}] over the dataset keys "
                             f"{list(spec.dataset_keys)}, got {kb.shape}")
    if mouse.shape != (len(kb), 2):
        raise ConditionError(f"mouse must be [T, 2] (d_pitch, d_yaw degrees) with T = {len(kb)}, got {mouse.shape}")
    return kb, mouse


@torch.no_grad()
def sample_latents(
    bundle: Bundle,
    frame0: torch.Tensor,
    keyboard: torch.Tensor,
    mouse: torch.Tensor | None,
    steps: int = 30,
    shift: float | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Euler sampling of the flow (module doc).

    Args:
        frame0: uint8 [B, 3, H, W]; keyboard [B, T, K_model]; mouse [B, T, 2] (model units) or None.

    Returns:
        latents [B, 16, F, h, w], F = 1 + (T - 1) / 4.
    """
    from tqdm.auto import tqdm

    dit, vae = bundle.dit, bundle.vae
    device = next(dit.parameters()).device
    amp = torch.bfloat16 if device.type == "cuda" else None
    t = keyboard.shape[1]
    r = vae.cfg.temporal_compression
    check_num_frames(t, r)
    cond_lat, tokens = encode_condition(vae, bundle.image_encoder, frame0.to(device), t, autocast_dtype=amp)
    cond = i2v_condition(cond_lat, r)
    x = torch.randn(cond_lat.shape, generator=generator).to(device)
    sig = shift_sigma(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), bundle.timestep_shift if shift is None else shift)
    kb, ms = keyboard.to(device), None if mouse is None else mouse.to(device)
    for i in tqdm(range(steps), desc="sample", disable=not progress):
        s = torch.full((x.shape[0],), float(sig[i]) * 1000.0, device=device)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            v = dit(x, s, tokens, cond, kb, ms)
        x = x + float(sig[i + 1] - sig[i]) * v.float()
    return x


def write_mp4(path: str | os.PathLike[str], frames: np.ndarray, fps: float, crf: int = 18) -> Path:
    """Write RGB uint8 frames [T, H, W, 3] as H.264 (yuv420p), in-process (:func:`capture.video.encode_video`;
    atomic; odd sizes padded by an edge pixel)."""
    from capture.video import encode_video

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return encode_video(np.asarray(frames, np.uint8), fps, p, crf=crf)


def generate_base(
    checkpoint: str | os.PathLike[str] | Bundle,
    image: str | os.PathLike[str] | np.ndarray,
    actions: Any,
    num_frames: int | None = None,
    steps: int = 30,
    out_mp4: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    shift: float | None = None,
    device: str | torch.device | None = None,
    use_ema: bool = True,
    fps: float | None = None,
    progress: bool = False,
) -> GenerateResult:
    """Generate a video from a first frame and actions with a base-training checkpoint.

    Args:
        checkpoint: a run folder (its latest checkpoint), a checkpoint folder, a ``dit*.safetensors`` file, or a
            loaded :class:`~model.bundle.Bundle`.
        image: the first frame, RGB uint8 [H, W, 3] or an image path (resized and centre-cropped to the model's
            resolution).
        actions: per-frame actions in the *dataset's* key space (see :func:`load_actions`): row i is the input
            that produced frame i (row 0 usually idle); d_pitch/d_yaw in degrees.
        num_frames: frames to generate (1 + 4k); default the longest 1 + 4k prefix of ``actions``.
        steps: Euler steps. shift: timestep shift (default: the training shift). seed: the initial noise.
        out_mp4: where to write the H.264 video (None: only return the frames).
        fps: of the mp4 (default: the dataset's).

    Returns:
        :class:`GenerateResult` with frames uint8 [T, H, W, 3] (frame 0 is the model's reconstruction of the
        first frame).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:  # 0 steps would write pure noise
        raise ValueError(f"steps: {steps!r} is not allowed; expected an integer >= 1 (Euler steps, e.g. 30)")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    bundle = checkpoint if isinstance(checkpoint, Bundle) else load_bundle(checkpoint, dev, use_ema)
    spec = bundle.spec
    kb_ds, mouse_ds = load_actions(actions, spec)
    n_avail = len(kb_ds)
    if num_frames is None:
        num_frames = 1 + 4 * ((n_avail - 1) // 4)
    check_num_frames(num_frames)
    if num_frames > n_avail:
        raise ConditionError(f"{num_frames} frames requested but the actions have only {n_avail} rows")
    img = load_image(image, spec.height, spec.width)
    frame0 = torch.from_numpy(img).permute(2, 0, 1)[None]  # uint8 [1, 3, H, W]
    keyboard = spec.keyboard(torch.from_numpy(kb_ds[:num_frames]))[None]
    mouse = spec.mouse(torch.from_numpy(mouse_ds[:num_frames]))
    mouse = None if mouse is None else mouse[None]
    g = torch.Generator().manual_seed(seed)
    latents = sample_latents(bundle, frame0, keyboard, mouse, steps, shift, g, progress)
    with torch.no_grad():
        video = bundle.vae.decode(latents.to(next(bundle.vae.parameters()).device), streaming=True)
    frames = ((video[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()
    rate = float(fps or bundle.fps)
    path = write_mp4(out_mp4, frames, rate) if out_mp4 is not None else None
    return GenerateResult(frames, path, latents.cpu(), rate)
