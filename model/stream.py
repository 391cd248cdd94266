"""Real-time streaming generation with the causal student: one image + a stream of actions -> video, block by block.

Per block of latent frames (:mod:`model.causal`)::

    actions  <- the block's raw frames from the source (a CSV / arrays, or keys typed at the terminal)
    cond     <- StreamingEncoder.push([frame0] or 4n zero frames)      i2v condition, streamed (causal VAE cache)
    x0       <- few-step denoise of fresh noise with the KV cache, then the cache rewrite
    frames   <- StreamingDecoder.push(x0)                               1 + 4(n-1) frames first, then 4n
    mp4      <- frames appended (H.264, in-process through capture.video)

Everything carried from block to block is bounded: the KV cache holds at most W - 1 committed latent frames
(W = ``local_attn_frames``), the VAE caches hold two frames per causal conv, the action history the last
``window_rows`` (12) raw rows. Memory is therefore constant for any length (up to the RoPE table of
:data:`~model.causal.MAX_LATENT_FRAMES` latent frames; past it :class:`~model.causal.PositionLimitError`).

Checkpoints (:func:`load_student`): a playmill run / checkpoint folder / ``dit*.safetensors`` (:func:`load_bundle`;
the causal settings come from the metadata key "causal" when the distillation wrote one, else the preset of the
model), or a Matrix-Game 2.0 distilled safetensors (``model.``-prefixed keys: universal ``base_distill``,
``gta_keyboard2dim``, ``templerun_7dim_onlykey``) loaded strictly into ``get_config("mg2-1.3b", mode)`` with the
Wan 2.1 VAE and the CLIP encoder given separately. The mode is read from the checkpoint's shapes and a different
``mode`` argument is an error.

Library entry points: :func:`generate_student` (writes an mp4, returns :class:`StudentResult`) and
:func:`stream_student` (a generator of :class:`StreamBlock`, decoded frames as they are made). Action sources:
:class:`TableActions` (``from_actions``: a CSV path / DataFrame / arrays in the dataset's key space, mapped by the
checkpoint's :class:`~model.conditions.ConditionSpec`) and :class:`TerminalActions` (one line of keys per block,
from any iterable of lines such as ``sys.stdin``).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Protocol, TextIO

import numpy as np
import torch

from .bundle import Bundle, load_bundle, load_image_encoder, load_vae, read_meta
from .causal import (
    MAX_LATENT_FRAMES,
    CausalConfig,
    CausalStreamer,
    PositionLimitError,
    block_size_at,
)
from .checkpoint import MG2_DISTILLED_PREFIX, CheckpointMismatchError, load_state_dict_strict, strip_prefix
from .conditions import (
    DEFAULT_KEYBOARD_MAPS,
    MG2_CAM_VALUE,
    NO_KEY,
    ConditionError,
    ConditionSpec,
    check_num_frames,
    resolve_keyboard_map,
)
from .configs import ACTION_MODES, get_config
from .dit import WorldModelDiT
from .vae import StreamingDecoder, StreamingEncoder

# ------------------------------------------------------------------------------------------------------------
# loading


@dataclass
class Student:
    """A loaded causal student: the networks and conditions (:class:`~model.bundle.Bundle`) and its causal settings."""

    bundle: Bundle
    causal: CausalConfig
    source: str  # "playmill" or "mg2"


#: Frame rate of Matrix-Game 2.0's output videos (its visualiser writes 12 fps).
MG2_FPS = 12.0

#: The released students per mode, as laid out in the Matrix-Game-2.0 model repository (third-party listing,
#: unverified); :func:`load_student` reads the mode from the file itself.
MG2_STUDENT_FILES: dict[str, str] = {
    "universal": "base_distilled_model/base_distill.safetensors",
    "gta_drive": "gta_distilled_model/gta_keyboard2dim.safetensors",
    "templerun": "templerun_distilled_model/templerun_7dim_onlykey.safetensors",
}

_KB_KEY = "blocks.0.action_model.keyboard_embed.0.weight"
_MOUSE_KEY = "blocks.0.action_model.mouse_mlp.0.weight"


def mg2_mode_from_shapes(shapes: Mapping[str, tuple[int, ...]], source: str = "checkpoint") -> str:
    """The action mode of a Matrix-Game 2.0 DiT state dict (keys without the "model." prefix) from its shapes:
    keyboard width 4 + mouse = universal, 2 + mouse = gta_drive, 7 without mouse = templerun."""
    if _KB_KEY not in shapes:
        raise CheckpointMismatchError([_KB_KEY], [], [], source)
    k = shapes[_KB_KEY][1]
    has_mouse = _MOUSE_KEY in shapes
    for name, m in ACTION_MODES.items():
        if m.keyboard_dim == k and (m.mouse_dim > 0) == has_mouse:
            return name
    raise ValueError(f"{source}: keyboard width {k} {'with' if has_mouse else 'without'} a mouse branch matches no "
                     f"action mode ({', '.join(f'{n}: {m.keyboard_dim}' for n, m in ACTION_MODES.items())})")


def _shapes_of(path: Path) -> dict[str, tuple[int, ...]]:
    from .checkpoint import safetensors_header

    return safetensors_header(path, expected="a Matrix-Game 2.0 distilled DiT .safetensors (keys model.*)")[0]


def load_mg2_dit(
    weights: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    mode: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> tuple[WorldModelDiT, str]:
    """A Matrix-Game 2.0 distilled DiT (``model.`` keys), strictly, into ``get_config("mg2-1.3b", mode)``.

    Args:
        weights: the ``.safetensors`` path, or a state dict (meta tensors allowed: the model then stays on meta).
        mode: expected action mode; None = read it from the shapes. A checkpoint of another mode raises
            ``ValueError`` naming both; the foundation (bidirectional) checkpoint is refused.

    Returns:
        (dit in eval mode without gradients, mode).
    """
    source = "state dict" if isinstance(weights, Mapping) else os.fspath(weights)
    if isinstance(weights, Mapping):
        sd: Mapping[str, torch.Tensor] | None = strip_prefix(weights, MG2_DISTILLED_PREFIX)
        shapes = {k: tuple(v.shape) for k, v in sd.items()}
    else:
        p = Path(weights)
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint not found: {p}")
        if p.suffix != ".safetensors":
            raise ValueError(f"{p}: a Matrix-Game 2.0 distilled checkpoint is a .safetensors file")
        sd = None
        shapes = {k[len(MG2_DISTILLED_PREFIX):] if k.startswith(MG2_DISTILLED_PREFIX) else k: s
                  for k, s in _shapes_of(p).items()}
    found = mg2_mode_from_shapes(shapes, source)
    if mode is not None and mode != found:
        raise ValueError(f"{source} is a Matrix-Game 2.0 {found!r} checkpoint (keyboard width "
                         f"{shapes[_KB_KEY][1]}), not {mode!r}: pass mode={found!r} or the {mode} checkpoint")
    if "blocks.15.action_model.keyboard_embed.0.weight" in shapes:
        raise ValueError(f"{source} has action modules in every block: it is the foundation (bidirectional) model, "
                         "not a distilled causal student; generate with --model base")
    cfg = get_config("mg2-1.3b", found)
    with torch.device("meta"):
        dit = WorldModelDiT(cfg.dit)
    if sd is None:
        from .checkpoint import read_state_dict

        sd = strip_prefix(read_state_dict(weights), MG2_DISTILLED_PREFIX)  # type: ignore[arg-type]
    load_state_dict_strict(dit, sd, source=source)
    if not any(p.is_meta for p in dit.parameters()):
        dit = dit.to(device=device, dtype=dtype)
    return dit.eval().requires_grad_(False), found


def mg2_condition_spec(mode: str, mouse_scale: float | None = None, height: int = 352, width: int = 640) -> ConditionSpec:
    """Conditions for a released checkpoint: dataset keys = the sources of the mode's default keyboard map (universal
    w,s,a,d; gta_drive w,s; templerun its 6 keys, ``nomove`` when none is held) and ``mouse_scale`` model units per
    degree (default 0.1: a 1 degree/frame turn is Matrix-Game's CAM_VALUE)."""
    keys = tuple(dict.fromkeys(v for v in DEFAULT_KEYBOARD_MAPS[mode].values() if v != NO_KEY))
    pairs = resolve_keyboard_map(mode, keys)
    scale = (MG2_CAM_VALUE if mouse_scale is None else float(mouse_scale)) if ACTION_MODES[mode].mouse_dim else 0.0
    return ConditionSpec(mode, keys, pairs, scale, 57, height, width)


def load_student(
    checkpoint: str | os.PathLike[str] | Bundle | Student,
    *,
    mode: str | None = None,
    cfg: CausalConfig | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    vae: str | os.PathLike[str] | None = None,
    image_encoder: str | os.PathLike[str] | None = None,
    mouse_scale: float | None = None,
    use_ema: bool = True,
) -> Student:
    """Load a causal student for streaming (module docstring).

    Args:
        checkpoint: a playmill run / checkpoint folder / weights file, a loaded Bundle, or a Matrix-Game 2.0
            distilled ``.safetensors``.
        mode: expected action mode (checked against the checkpoint).
        cfg: causal settings (default: the checkpoint's "causal" metadata, else the model's preset).
        vae / image_encoder: for a Matrix-Game 2.0 checkpoint, ``Wan2.1_VAE.pth`` and the CLIP ``.pth`` (required).
        mouse_scale: for a Matrix-Game 2.0 checkpoint, model mouse units per degree (:func:`mg2_condition_spec`).
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if isinstance(checkpoint, Student):
        st = checkpoint
        if cfg is not None:
            st = Student(st.bundle, cfg, st.source)
        _check_mode(st.bundle.spec.mode, mode, str(st.bundle.weights))
        return st
    if isinstance(checkpoint, Bundle):
        _check_mode(checkpoint.spec.mode, mode, str(checkpoint.weights))
        return Student(checkpoint, cfg or _causal_from_run(checkpoint), "playmill")
    p = Path(checkpoint)
    if p.is_dir() or ("model" in read_meta(p) if p.is_file() else False):
        bundle = load_bundle(p, dev, use_ema, dtype)
        _check_mode(bundle.spec.mode, mode, str(bundle.weights))
        return Student(bundle, cfg or _causal_from_run(bundle), "playmill")
    dit, found = load_mg2_dit(p, mode, dev, dtype)
    if vae is None or image_encoder is None:
        raise ValueError(f"{p} is a Matrix-Game 2.0 {found} checkpoint: also pass vae=<Wan2.1_VAE.pth> and "
                         "image_encoder=<models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth>")
    mcfg = get_config("mg2-1.3b", found)
    v = load_vae(vae, mcfg.vae, dev)
    enc = load_image_encoder(image_encoder, mcfg.image_encoder, dev)
    spec = mg2_condition_spec(found, mouse_scale)
    # 12 fps: what the reference writes its videos at (Matrix-Game-2/utils/visualize.py, process_video)
    bundle = Bundle(dit, v, enc, spec, mcfg, MG2_FPS, 5.0, {"source": "mg2", "weights": os.fspath(p)}, p)
    return Student(bundle, cfg or CausalConfig.preset(f"mg2-{found}"), "mg2")


def _check_mode(have: str, want: str | None, source: str) -> None:
    if want is not None and want != have:
        raise ValueError(f"{source} is a {have!r} model, not {want!r}: pass mode={have!r} or a {want} checkpoint")


def _causal_from_run(bundle: Bundle) -> CausalConfig:
    c = bundle.run.get("causal")
    if isinstance(c, Mapping):
        return CausalConfig.from_dict(c)
    return CausalConfig.for_model(bundle.model_config.name, bundle.spec.mode)


# ------------------------------------------------------------------------------------------------------------
# action sources (model space: keyboard [n, K_model], mouse [n, 2] in model units or None)


class ActionSource(Protocol):
    """Yields the actions of the next ``n`` raw video frames in the model's space, or None when the stream ends."""

    def take(self, n: int, start_frame: int) -> tuple[np.ndarray, np.ndarray | None] | None: ...


class TableActions:
    """Actions known in advance (model space). ``take`` returns the next rows (None when fewer than ``n`` are left).

    Args:
        keyboard: [T, K_model]; mouse: [T, 2] model units, or None (templerun).
    """

    def __init__(self, keyboard: np.ndarray, mouse: np.ndarray | None) -> None:
        self.keyboard = np.asarray(keyboard, np.float32)
        self.mouse = None if mouse is None else np.asarray(mouse, np.float32)
        self.pos = 0

    def __len__(self) -> int:
        return len(self.keyboard)

    @classmethod
    def from_actions(cls, actions: Any, spec: ConditionSpec) -> "TableActions":
        """Dataset-space actions (a CSV path, a DataFrame, ``(keyboard, mouse)`` arrays over the dataset keys, ...;
        see :func:`model.sample.load_actions`) mapped by ``spec``. Errors (:class:`ConditionError`) name the
        missing columns, a wrong width or NaN values."""
        from .sample import load_actions

        kb_ds, mouse_ds = load_actions(actions, spec)
        if not (np.isfinite(kb_ds).all() and np.isfinite(mouse_ds).all()):
            bad = int(np.argwhere(~np.isfinite(np.concatenate([kb_ds, mouse_ds], 1)))[0, 0])
            raise ConditionError(f"actions contain NaN or infinite values (first at row {bad})")
        kb = spec.keyboard(torch.from_numpy(kb_ds)).numpy()
        m = spec.mouse(torch.from_numpy(mouse_ds))
        return cls(kb, None if m is None else m.numpy())

    def take(self, n: int, start_frame: int = 0) -> tuple[np.ndarray, np.ndarray | None] | None:
        if self.pos + n > len(self.keyboard):
            return None
        sl = slice(self.pos, self.pos + n)
        self.pos += n
        return self.keyboard[sl], None if self.mouse is None else self.mouse[sl]


#: Terminal keys per mode: letter -> model key; i/k/j/l move the mouse (pitch up/down, yaw left/right).
TERMINAL_KEYS: dict[str, dict[str, str]] = {
    "universal": {"w": "w", "s": "s", "a": "a", "d": "d"},
    "gta_drive": {"w": "forward", "s": "back"},
    "templerun": {"w": "jump", "s": "slide", "a": "leftside", "d": "rightside", "j": "turnleft", "l": "turnright"},
}
#: Mouse letters -> (d_pitch, d_yaw) in units of ``cam`` (gta_drive also steers with a/d).
TERMINAL_MOUSE: dict[str, tuple[float, float]] = {"i": (1.0, 0.0), "k": (-1.0, 0.0), "j": (0.0, -1.0), "l": (0.0, 1.0)}


class TerminalActions:
    """Keys typed at a terminal, one line per block: the keys on the line are held for the whole block.

    universal: w/s/a/d move, i/k look up/down, j/l turn left/right; gta_drive: w/s throttle/brake, a/d (or j/l)
    steer; templerun: w jump, s slide, a/d side-step, j/l turn (one key per block; none = nomove), as the
    reference's key layout (still, w, s, left, right, a, d).
    An empty line is idle; ``q`` or the end of the input ends the stream. Unknown characters are reported on
    ``out`` and ignored.

    Args:
        lines: any iterable of strings (``sys.stdin``, a list in tests).
        mode: the model's action mode.
        cam: mouse value of a held look/turn key, in model units (Matrix-Game's CAM_VALUE 0.1).
        out: where prompts and notices go (None = silent).
    """

    def __init__(self, lines: Iterable[str], mode: str, cam: float = MG2_CAM_VALUE, out: TextIO | None = None) -> None:
        if mode not in ACTION_MODES:
            raise ValueError(f"unknown action mode {mode!r}; allowed: {', '.join(sorted(ACTION_MODES))}")
        self.lines = iter(lines)
        self.mode = ACTION_MODES[mode]
        self.cam = float(cam)
        self.out = out
        keys = dict(TERMINAL_KEYS[mode])
        self.mouse_letters = dict(TERMINAL_MOUSE) if self.mode.mouse_dim else {}
        if mode == "gta_drive":
            self.mouse_letters.update({"a": (0.0, -1.0), "d": (0.0, 1.0)})
        self.key_letters = keys
        self.help = (f"keys: {' '.join(f'{c}={k}' for c, k in keys.items())}"
                     + (f" {' '.join(f'{c}=mouse{v}' for c, v in self.mouse_letters.items())}" if self.mouse_letters else "")
                     + "; empty = idle, q = quit")

    def parse(self, line: str) -> tuple[np.ndarray, np.ndarray | None] | None:
        """One line -> (keyboard row [K_model], mouse row [2] or None); None for quit."""
        text = line.strip().lower()
        if text in ("q", "quit", "exit"):
            return None
        keys = list(self.mode.keys)
        kb = np.zeros(len(keys), np.float32)
        mouse = np.zeros(2, np.float32)
        unknown = []
        one_hot = self.mode.name == "templerun"
        for ch in text.replace(" ", ""):
            if ch in self.mouse_letters:
                mouse += self.cam * np.asarray(self.mouse_letters[ch], np.float32)
            elif ch in self.key_letters:
                idx = keys.index(self.key_letters[ch])
                if one_hot and kb.any():
                    continue
                kb[idx] = 1.0
            else:
                unknown.append(ch)
        if unknown and self.out is not None:
            print(f"ignored keys {''.join(unknown)!r} ({self.help})", file=self.out, flush=True)
        if one_hot and not kb.any():
            kb[keys.index("nomove")] = 1.0
        return kb, (mouse if self.mode.mouse_dim else None)

    def take(self, n: int, start_frame: int = 0) -> tuple[np.ndarray, np.ndarray | None] | None:
        if self.out is not None:
            print(f"[latent frame {start_frame}] {self.help}\n> ", end="", file=self.out, flush=True)
        try:
            line = next(self.lines)
        except StopIteration:
            return None
        row = self.parse(line)
        if row is None:
            return None
        kb, mouse = row
        return np.repeat(kb[None], n, 0), None if mouse is None else np.repeat(mouse[None], n, 0)


# ------------------------------------------------------------------------------------------------------------
# video writer


class Mp4Writer:
    """Appends RGB uint8 frames [n, H, W, 3] to an H.264 mp4 as they come (:class:`capture.video.VideoWriter`,
    in-process; a temporary file renamed on close; odd sizes padded by an edge pixel)."""

    def __init__(self, path: str | os.PathLike[str], fps: float, crf: int = 18) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp{self.path.suffix or '.mp4'}")
        self.fps, self.crf = float(fps), crf
        self._writer: Any = None
        self.frames = 0

    def write(self, frames: np.ndarray) -> None:
        from capture.video import VideoWriter

        h, w = frames.shape[1:3]
        if self._writer is None:
            self._writer = VideoWriter(self.tmp, w + w % 2, h + h % 2, self.fps, crf=self.crf)
        if h % 2 or w % 2:
            frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        for f in frames:
            self._writer.write(np.ascontiguousarray(f, dtype=np.uint8))
        self.frames += len(frames)

    def close(self, keep: bool = True) -> Path | None:
        if self._writer is not None:
            if keep:
                self._writer.close()
            else:
                self._writer.abort()
            self._writer = None
        if keep and self.tmp.exists():
            os.replace(self.tmp, self.path)
            return self.path
        if self.tmp.exists():
            self.tmp.unlink()
        return None


# ------------------------------------------------------------------------------------------------------------
# streaming


class ConditionStream:
    """The i2v condition [mask ; VAE.encode([frame0, 0, 0, ...])] of an unbounded video, latent frame by latent frame.

    The encoder is pushed frame0, then 4 zero frames per latent frame: exactly the chunks of
    ``WanVAE.encode(streaming=True)``, so the result equals encoding the whole padded clip. Once a push leaves the
    encoder's causal cache bitwise unchanged and repeats the previous latent, the encoder is at a fixed point under
    zero input and every later latent frame is that latent (:attr:`frozen_at` records where; no more encoding).

    Call it as ``cond(start, n)`` with consecutive blocks (what :class:`~model.causal.CausalStreamer` does).
    """

    def __init__(self, vae: Any, first: torch.Tensor, autocast_dtype: torch.dtype | None = None) -> None:
        self.vae, self.first, self.amp = vae, first, autocast_dtype
        self.enc = StreamingEncoder(vae)
        self.r = vae.cfg.temporal_compression
        self.next = 0
        self.frozen_at: int | None = None
        self._last: torch.Tensor | None = None
        self._state: dict[int, Any] | None = None

    def _snapshot(self) -> dict[int, Any]:
        return {k: (v.clone() if torch.is_tensor(v) else v) for k, v in self.enc.cache._state.items()}

    @staticmethod
    def _same(a: dict[int, Any] | None, b: dict[int, Any]) -> bool:
        return a is not None and a.keys() == b.keys() and all(
            torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a)

    def _latent(self) -> torch.Tensor:
        """The normalised condition latent of latent frame ``self.next`` [1, 16, 1, h, w]."""
        if self.frozen_at is not None:
            return self._last  # type: ignore[return-value]
        x = self.first if self.next == 0 else self.first.new_zeros(1, 3, self.r, *self.first.shape[3:])
        with torch.no_grad(), torch.autocast(x.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            lat = self.enc.push(x).float()
        state = self._snapshot()
        if self.next > 0 and self._last is not None and torch.equal(lat, self._last) and self._same(self._state, state):
            self.frozen_at = self.next
        self._last, self._state = lat, state
        return lat

    def __call__(self, start: int, n: int) -> torch.Tensor:
        if start != self.next:
            raise ValueError(f"condition requested from latent frame {start}; the stream is at {self.next}")
        lats = []
        for _ in range(n):
            lats.append(self._latent())
            self.next += 1
        lat = torch.cat(lats, dim=2)
        mask = torch.zeros(1, self.r, n, *lat.shape[3:], device=lat.device)
        if start == 0:
            mask[:, :, 0] = 1
        return torch.cat([mask, lat], dim=1)


@dataclass
class StreamBlock:
    """One generated block: latent frames start_frame .. start_frame + n - 1, their decoded video frames
    (RGB uint8 [n', H, W, 3], n' = 1 + 4(n-1) for the first block, else 4n) and the wall time it took."""

    start_frame: int
    latents: torch.Tensor
    frames: np.ndarray
    seconds: float
    cache_bytes: int


@dataclass
class StudentResult:
    """Summary of a streamed video (frames are only kept with ``keep_frames``)."""

    path: Path | None
    num_frames: int
    latent_frames: int
    fps: float
    seconds: float
    block_seconds: list[float] = field(default_factory=list)
    cache_bytes: list[int] = field(default_factory=list)
    frames: np.ndarray | None = None

    @property
    def frames_per_second(self) -> float:
        """Generated video frames per wall-clock second (model, VAE and writing)."""
        return self.num_frames / self.seconds if self.seconds > 0 else float("nan")


def _to_uint8(video: torch.Tensor) -> np.ndarray:
    """[1, 3, n, H, W] in [-1, 1] -> uint8 [n, H, W, 3]."""
    return ((video[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()


def _actions_source(actions: Any, spec: ConditionSpec) -> ActionSource:
    if hasattr(actions, "take"):
        return actions
    return TableActions.from_actions(actions, spec)


class _ActionHistory:
    """The raw action rows a block's action windows read: the rows taken so far, cut after each block to the last
    ``keep_rows`` (the most a later window can need); ``row0`` is the raw row index of the first row kept."""

    def __init__(self, keep_rows: int) -> None:
        self.keep_rows, self.row0 = keep_rows, 0
        self.kb: np.ndarray | None = None
        self.ms: np.ndarray | None = None

    def append(self, kb: np.ndarray, ms: np.ndarray | None) -> None:
        self.kb = kb if self.kb is None else np.concatenate([self.kb, kb])
        if ms is not None:
            self.ms = ms if self.ms is None else np.concatenate([self.ms, ms])

    def tensors(self, device: torch.device, uses_mouse: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The kept rows as [1, rows, K] keyboard and [1, rows, 2] mouse (None without a mouse) on ``device``."""
        kb = torch.from_numpy(self.kb)[None].to(device)
        return kb, None if self.ms is None or not uses_mouse else torch.from_numpy(self.ms)[None].to(device)

    def trim(self) -> None:
        total_rows = self.row0 + len(self.kb)
        cut = max(0, len(self.kb) - self.keep_rows)
        self.kb = self.kb[cut:]
        if self.ms is not None:
            self.ms = self.ms[cut:]
        self.row0 = total_rows - len(self.kb)


def _latent_total(num_frames: int | None, src: ActionSource, r: int) -> int | None:
    """The latent frames of ``num_frames`` video frames (None: until the actions end), checked against the RoPE
    limit and a table's length."""
    if num_frames is None:
        return None
    max_frames = 1 + r * (MAX_LATENT_FRAMES - 1)
    check_num_frames(num_frames, r)
    if num_frames > max_frames:
        raise PositionLimitError(f"num_frames={num_frames} is past the RoPE limit of {MAX_LATENT_FRAMES} latent "
                                 f"frames ({max_frames} video frames)")
    if isinstance(src, TableActions) and len(src) < num_frames:
        raise ConditionError(f"{num_frames} frames requested but the actions have only {len(src)} rows")
    return 1 + (num_frames - 1) // r


def stream_student(
    checkpoint: str | os.PathLike[str] | Bundle | Student,
    image: str | os.PathLike[str] | np.ndarray,
    actions: Any,
    *,
    num_frames: int | None = None,
    cfg: CausalConfig | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    mode: str | None = None,
    progress: bool = False,
    **load_kw: Any,
) -> Iterator[StreamBlock]:
    """Generate block by block, yielding each block's decoded frames as soon as it is made (module docstring).

    Args:
        checkpoint: see :func:`load_student` (``load_kw``: vae, image_encoder, mouse_scale, use_ema, dtype).
        image: the first frame (RGB uint8 [H, W, 3] or a path), resize-cropped to the model's resolution.
        actions: an :class:`ActionSource` (e.g. :class:`TerminalActions`), or dataset-space actions for
            :meth:`TableActions.from_actions` (CSV path, DataFrame, arrays).
        num_frames: video frames to generate (1 + 4k); None = until the actions end (a table: its longest
            1 + 4k prefix that fills whole blocks). A table shorter than ``num_frames`` is an error.
        cfg: causal settings (default: the checkpoint's). seed: of the noise (CPU generator: the same on any device).
    """
    from tqdm.auto import tqdm

    from .sample import load_image

    student = load_student(checkpoint, mode=mode, cfg=cfg, device=device, **load_kw)
    b, ccfg = student.bundle, student.causal
    spec = b.spec
    dit, vae = b.dit, b.vae
    dev = next(dit.parameters()).device
    amp = torch.bfloat16 if dev.type == "cuda" and next(dit.parameters()).dtype == torch.float32 else None
    r = vae.cfg.temporal_compression
    src = _actions_source(actions, spec)
    latent_total = _latent_total(num_frames, src, r)

    # ---- the first frame's conditions: image tokens, and the i2v condition streamed block by block ----
    img = load_image(image, spec.height, spec.width)
    frame0 = torch.from_numpy(img).permute(2, 0, 1)[None].to(dev)
    first = frame0.float().div(127.5).sub(1.0)[:, :, None]  # [1, 3, 1, H, W]
    dec = StreamingDecoder(vae)
    autocast = (lambda: torch.autocast(dev.type, dtype=amp)) if amp is not None else torch.no_grad
    with torch.no_grad(), autocast():
        tokens = b.image_encoder(first[:, :, 0]).float()
    cond = ConditionStream(vae, first, autocast_dtype=amp)
    streamer = CausalStreamer(dit, ccfg, tokens, cond, autocast_dtype=amp)
    g = torch.Generator().manual_seed(seed)
    hist = _ActionHistory(dit.cfg.action.window_rows if dit.cfg.action is not None else 0)
    start = 0
    bar = tqdm(total=latent_total, desc="stream", unit="latent", disable=not progress)
    try:
        while latent_total is None or start < latent_total:
            n = block_size_at(start, ccfg)
            if latent_total is not None:
                n = min(n, latent_total - start)
            rows = 1 + r * (n - 1) if start == 0 else r * n
            t0 = time.perf_counter()
            got = src.take(rows, start)
            if got is None or len(got[0]) < rows:
                if num_frames is not None:
                    raise ConditionError(f"the actions ended at latent frame {start} (video frame "
                                         f"{1 + r * (start - 1) if start else 0}); {num_frames} frames were requested")
                break
            _check_rows(got[0], got[1], dit, rows)
            hist.append(*got)
            kb_t, ms_t = hist.tensors(dev, spec.uses_mouse)
            noise = torch.randn(1, dit.cfg.out_dim, n, *_latent_hw(spec, vae), generator=g).to(dev)
            with torch.no_grad():
                x0 = streamer.generate_block(noise, start, kb_t, ms_t, action_row_offset=hist.row0, generator=g)
                with autocast():
                    video = dec.push(x0)
            frames = _to_uint8(video)
            hist.trim()  # keep only the raw rows later windows can need
            yield StreamBlock(start, x0.cpu(), frames, time.perf_counter() - t0, streamer.cache.nbytes())
            bar.update(n)
            start += n
    finally:
        bar.close()


def _latent_hw(spec: ConditionSpec, vae: Any) -> tuple[int, int]:
    s = vae.cfg.spatial_compression
    return spec.height // s, spec.width // s


def _check_rows(kb: np.ndarray, ms: np.ndarray | None, dit: WorldModelDiT, rows: int) -> None:
    act = dit.cfg.action
    if act is None:
        return
    if kb.ndim != 2 or kb.shape[1] != act.keyboard_dim:
        raise ConditionError(f"keyboard actions must be [rows, {act.keyboard_dim}] for this model, got {kb.shape}")
    if act.mouse_dim and (ms is None or ms.shape != (rows, act.mouse_dim)):
        raise ConditionError(f"mouse actions must be [{rows}, {act.mouse_dim}] for this model, got "
                             f"{None if ms is None else ms.shape}")
    if not np.isfinite(kb).all() or (ms is not None and not np.isfinite(ms).all()):
        raise ConditionError("actions contain NaN or infinite values")


def generate_student(
    checkpoint: str | os.PathLike[str] | Bundle | Student,
    image: str | os.PathLike[str] | np.ndarray,
    actions: Any,
    out_mp4: str | os.PathLike[str] | None,
    *,
    num_frames: int | None = None,
    cfg: CausalConfig | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
    mode: str | None = None,
    fps: float | None = None,
    keep_frames: bool = False,
    **load_kw: Any,
) -> StudentResult:
    """Stream a video with the causal student and write it to ``out_mp4`` as it is generated.

    Args: as :func:`stream_student`; ``out_mp4`` None only measures; ``fps`` of the mp4 (default: the
    checkpoint's dataset fps); ``keep_frames`` also returns all frames (memory grows with the length).

    Returns:
        :class:`StudentResult` (path, frames and latent frames generated, per-block seconds and cache bytes).
    """
    student = load_student(checkpoint, mode=mode, cfg=cfg, device=device,
                           **{k: load_kw.pop(k) for k in list(load_kw) if k in ("vae", "image_encoder", "mouse_scale",
                                                                                 "use_ema", "dtype")})
    rate = float(fps or student.bundle.fps)
    writer = Mp4Writer(out_mp4, rate) if out_mp4 is not None else None
    kept: list[np.ndarray] = []
    res = StudentResult(None, 0, 0, rate, 0.0)
    t0 = time.perf_counter()
    ok = False
    try:
        for blk in stream_student(student, image, actions, num_frames=num_frames, seed=seed, progress=progress, **load_kw):
            if writer is not None:
                writer.write(blk.frames)
            if keep_frames:
                kept.append(blk.frames)
            res.num_frames += len(blk.frames)
            res.latent_frames += blk.latents.shape[2]
            res.block_seconds.append(blk.seconds)
            res.cache_bytes.append(blk.cache_bytes)
        ok = True
    finally:
        if writer is not None:
            res.path = writer.close(keep=ok and writer.frames > 0)
    res.seconds = time.perf_counter() - t0
    if keep_frames and kept:
        res.frames = np.concatenate(kept)
    if res.num_frames == 0:
        raise ConditionError("no frames generated: the actions ended before the first block "
                             f"({block_size_at(0, student.causal)} latent frames)")
    return res


def generate_interactive(checkpoint: Any, image: Any, out_mp4: str | os.PathLike[str], *, stdin: TextIO | None = None,
                stdout: TextIO | None = None, **kw: Any) -> StudentResult:
    """Generate from keys typed at the terminal (:class:`TerminalActions` over ``stdin``), one line per block."""
    student = load_student(checkpoint, **{k: kw.pop(k) for k in list(kw) if k in ("mode", "cfg", "device", "vae",
                                                                                    "image_encoder", "mouse_scale",
                                                                                    "use_ema", "dtype")})
    src = TerminalActions(stdin or sys.stdin, student.bundle.spec.mode, out=stdout or sys.stderr)
    return generate_student(student, image, src, out_mp4, **kw)


__all__ = [
    "MG2_FPS",
    "MG2_STUDENT_FILES",
    "ActionSource",
    "ConditionStream",
    "Mp4Writer",
    "StreamBlock",
    "Student",
    "StudentResult",
    "TableActions",
    "TerminalActions",
    "generate_student",
    "generate_interactive",
    "load_mg2_dit",
    "load_student",
    "mg2_condition_spec",
    "mg2_mode_from_shapes",
    "stream_student",
]
