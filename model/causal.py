"""The causal few-step student: block-causal attention, a rolling KV cache and block-by-block rollout.

Block structure. Latent frames are grouped into blocks of ``chunk_frames`` (Matrix-Game 2.0: 3); with
``first_frame_block`` latent frame 0 is a block of its own and the blocks start at 1. Let end(q) be one past the
last frame of q's block, clipped to the sequence length. Frame q may attend to frame k iff

    k < end(q)                                              (causal between blocks, bidirectional inside one)
    and (W == -1 or k >= end(q) - W)                         (local window of W = ``local_attn_frames`` frames,
                                                              the current block included)
    and not (hide_first_frame and k == 0 and q not in block 0)

(:func:`block_mask`). Every attention in time uses it: the DiT's self-attention, the action module's mouse
self-attention (per spatial location) and its keyboard cross-attention (one key per latent frame).

Streaming (:class:`CausalStreamer`). A block is denoised with the few-step schedule ``sigmas`` (noise levels in
[0, 1], 1 first). With the flow convention of this repository (x_s = (1 - s) x0 + s eps, the DiT predicts
v = eps - x0 at timestep 1000 s)::

    x0_hat  = x_s - s * DiT(x_s, 1000 s)                    one forward per step
    x_s'    = (1 - s') x0_hat + s' eps',  eps' ~ N(0, I)     re-noise to the next level (fresh noise)

and the output is the last x0_hat. After each block the DiT runs once more on the clean output (noised to
``context_noise``) and its keys/values of that block are written to the KV cache (:meth:`CausalStreamer.commit_block`).
The cache (:class:`KVCache`, one :class:`LayerKV` per DiT block) holds, per cached latent frame, the rotated
self-attention k/v, the mouse k/v per spatial location and the keyboard k/v; the image-context k/v of the
cross-attention are computed once. Frames that no later block can see (older than end - W + 1) are evicted, so
memory is constant for any length when W > 0. Positions are absolute (RoPE at start_frame + i), up to the
1024-latent-frame RoPE table of the reference (:data:`MAX_LATENT_FRAMES`).

Equivalence (tested): denoising block b with the cache equals :func:`causal_forward` (the uncached forward with
:func:`block_mask`) on the sequence [clean blocks 0..b-1 ; noisy block b] at the same inputs and noise.

:func:`rollout` is Self-Forcing's generator rollout (what DMD trains): block by block, integrate the schedule up
to ``exit_step``; with ``grad=True`` only the exit-step forward keeps the autograd graph.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Mapping, Sequence

import torch
from pydantic import AfterValidator, model_validator

from capture.settings import ConfigError, Field, Invalid, merge, settings, validate

from .attention import attention
from .dit import WorldModelDiT
from .schedule import shifted

#: Latent frames covered by the reference's RoPE table (rope_params(1024, ...)): positions 0..1023.
MAX_LATENT_FRAMES = 1024


class PositionLimitError(ValueError):
    """Generation ran past the RoPE table of :data:`MAX_LATENT_FRAMES` latent frames."""


def _schedule(sigmas: tuple[float, ...]) -> tuple[float, ...]:
    if not sigmas or any(not 0.0 < x <= 1.0 for x in sigmas) or any(a <= b for a, b in zip(sigmas, sigmas[1:])):
        raise Invalid("", list(sigmas), "noise levels in (0, 1], strictly decreasing, e.g. [1.0, 0.9, 0.75]")
    return sigmas


@settings
class CausalConfig:
    """Settings of the causal student (they change the attention pattern and the sampler, not the parameters).
    ``hide_first_frame`` is a training option: latent frame 0 is invisible to frames outside its block."""

    chunk_frames: int = Field(3, ge=1, description="latent frames per block (Matrix-Game 2.0: 3)")
    local_attn_frames: int = Field(6, ge=-1, description="attention window in latent frames, the block included (-1: unbounded)")
    first_frame_block: bool = Field(True, description="latent frame 0 is a block of its own")
    hide_first_frame: bool = Field(False, description="frame 0 is invisible to frames outside its block (training)")
    context_noise: float = Field(0.0, ge=0, lt=1, description="noise level of the clean output written to the cache")
    sigmas: Annotated[tuple[float, ...], AfterValidator(_schedule)] = Field(
        shifted((1.0, 0.75, 0.5, 0.25), 5.0), description="the few-step schedule, noise levels from 1.0 down")

    @model_validator(mode="after")
    def _window(self) -> "CausalConfig":
        w = self.local_attn_frames
        if w != -1 and w < self.chunk_frames:
            raise Invalid("local_attn_frames", w, f"-1 (unbounded) or >= chunk_frames ({self.chunk_frames}): a block "
                          "must see all of itself")
        return self

    @property
    def num_steps(self) -> int:
        return len(self.sigmas)

    @property
    def timesteps(self) -> tuple[float, ...]:
        """The schedule as DiT timesteps, 1000 * sigma."""
        return tuple(1000.0 * s for s in self.sigmas)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CausalConfig":
        """From a mapping of fields; ``preset`` names a base preset that the other keys override; ``steps`` +
        ``shift`` (timesteps in [0, 1000], e.g. [1000, 666, 333], and the shift) may replace ``sigmas``."""
        d = dict(d)
        base = cls.preset(d.pop("preset")) if "preset" in d else cls()
        if "steps" in d:
            try:
                steps = [float(x) / 1000.0 for x in d.pop("steps")]
                d["sigmas"] = shifted(tuple(steps), float(d.pop("shift", 1.0)))
            except (TypeError, ValueError):
                raise ConfigError("causal", ["steps/shift: expected timesteps in [0, 1000] (e.g. [1000, 666, 333]) "
                                             "and a number"]) from None
        elif "shift" in d:
            raise ConfigError("causal", ["shift: needs steps (timesteps in [0, 1000])"])
        return validate(cls, merge(base.to_dict(), d), "causal")

    @staticmethod
    def presets() -> dict[str, "CausalConfig"]:
        """Named settings: "tiny" (CPU tests and distillation on the tiny model) and the released Matrix-Game 2.0
        students "mg2-universal", "mg2-gta_drive", "mg2-templerun" (3 latent frames per block, frame 0 inside
        the first block, context noise 0; steps [1000, 666, 333] shift 5 for universal/gta_drive, 4 steps
        [1000, 750, 500, 250] shift 5 for templerun; window 6 / 4 / 6)."""
        three = shifted((1.0, 0.666, 0.333), 5.0)
        four = shifted((1.0, 0.75, 0.5, 0.25), 5.0)
        return {
            "tiny": CausalConfig(chunk_frames=2, local_attn_frames=4, first_frame_block=True, sigmas=three),
            "mg2-universal": CausalConfig(3, 6, False, False, 0.0, three),
            "mg2-gta_drive": CausalConfig(3, 4, False, False, 0.0, three),
            "mg2-templerun": CausalConfig(3, 6, False, False, 0.0, four),
        }

    @classmethod
    def preset(cls, name: str) -> "CausalConfig":
        p = cls.presets()
        if name not in p:
            raise ValueError(f"unknown causal preset {name!r}; allowed: {', '.join(sorted(p))}")
        return p[name]

    @classmethod
    def for_model(cls, model_name: str, mode: str) -> "CausalConfig":
        """The preset for a model config name ("tiny", "mg2-1.3b") and action mode."""
        if model_name == "tiny":
            return cls.preset("tiny")
        if model_name.startswith("mg2"):
            return cls.preset(f"mg2-{mode}")
        raise ValueError(f"no causal preset for model {model_name!r}; pass a CausalConfig")


# ------------------------------------------------------------------------------------------------------------
# block structure


def block_start(frame: int, cfg: CausalConfig) -> int:
    """First latent frame of the block holding ``frame``."""
    if cfg.first_frame_block:
        return 0 if frame == 0 else 1 + ((frame - 1) // cfg.chunk_frames) * cfg.chunk_frames
    return (frame // cfg.chunk_frames) * cfg.chunk_frames


def block_size_at(start: int, cfg: CausalConfig) -> int:
    """Latent frames of the (full) block that starts at ``start``; ValueError if no block starts there."""
    if block_start(start, cfg) != start:
        raise ValueError(f"no block starts at latent frame {start} (chunk_frames={cfg.chunk_frames}, "
                         f"first_frame_block={cfg.first_frame_block}); blocks start at {block_starts_hint(cfg)}")
    return 1 if (cfg.first_frame_block and start == 0) else cfg.chunk_frames


def block_starts_hint(cfg: CausalConfig) -> str:
    c = cfg.chunk_frames
    return f"0, 1, {1 + c}, {1 + 2 * c}, ..." if cfg.first_frame_block else f"0, {c}, {2 * c}, ..."


def block_spans(num_frames: int, cfg: CausalConfig, start: int = 0) -> list[tuple[int, int]]:
    """(start, length) of every block covering latent frames start .. num_frames - 1 (the last may be short)."""
    spans = []
    f = start
    while f < num_frames:
        n = min(block_size_at(f, cfg), num_frames - f)
        spans.append((f, n))
        f += n
    return spans


def frame_visibility(q_frames: torch.Tensor, k_frames: torch.Tensor, cfg: CausalConfig, num_frames: int) -> torch.Tensor:
    """bool [Nq, Nk]: may latent frame q attend to latent frame k (absolute indices; the module docstring's rule).

    ``num_frames``: the sequence length that clips the last block's end.
    """
    c = cfg.chunk_frames
    q = q_frames.long()
    if cfg.first_frame_block:
        end = torch.where(q == 0, torch.ones_like(q), 1 + ((q - 1).clamp(min=0) // c + 1) * c)
        end0 = 1
    else:
        end = (q // c + 1) * c
        end0 = c
    end = end.clamp(max=num_frames)[:, None]
    k = k_frames.long()[None, :]
    mask = k < end
    if cfg.local_attn_frames != -1:
        mask &= k >= end - cfg.local_attn_frames
    if cfg.hide_first_frame:
        mask &= ~((k == 0) & (q[:, None] >= end0))
    return mask


def block_mask(num_latent_frames: int, cfg: CausalConfig, frame_offset: int = 0,
               device: torch.device | str | None = None) -> torch.Tensor:
    """bool [F, F] (True = attend) over the latent frames frame_offset .. frame_offset + F - 1 (module doc)."""
    idx = torch.arange(frame_offset, frame_offset + num_latent_frames, device=device)
    return frame_visibility(idx, idx, cfg, frame_offset + num_latent_frames)


def check_positions(end_frame: int) -> None:
    """PositionLimitError unless latent frames up to ``end_frame`` - 1 fit the RoPE table."""
    if end_frame > MAX_LATENT_FRAMES:
        raise PositionLimitError(
            f"latent frame {end_frame - 1} is past the RoPE limit of {MAX_LATENT_FRAMES} latent frames "
            f"({1 + 4 * (MAX_LATENT_FRAMES - 1)} video frames) that Matrix-Game 2.0 was trained with; "
            f"generate at most {MAX_LATENT_FRAMES} latent frames (start a new stream from the last frame for more)")


def causal_forward(
    dit: WorldModelDiT,
    x_t: torch.Tensor,
    timestep: torch.Tensor,
    image_tokens: torch.Tensor,
    cond: torch.Tensor | None,
    keyboard: torch.Tensor | None,
    mouse: torch.Tensor | None,
    cfg: CausalConfig,
    *,
    frame_offset: int = 0,
) -> torch.Tensor:
    """The uncached block-causal forward over a whole sequence (the student's training path).

    Args:
        x_t: noisy latents [B, 16, F, h, w] (each frame at its own level).
        timestep: [B, F] (or [B]) in [0, 1000] = 1000 * noise level.
        image_tokens / cond: as :meth:`WorldModelDiT.forward` (cond [B, 20, F, h, w]).
        keyboard / mouse: per raw frame, covering latent frames 0 .. frame_offset + F - 1.
        frame_offset: absolute index of x_t's first latent frame (RoPE, action windows, block boundaries).

    Returns:
        the flow prediction v [B, 16, F, h, w] under :func:`block_mask`.
    """
    f = x_t.shape[2]
    check_positions(frame_offset + f)
    mask = block_mask(f, cfg, frame_offset, device=x_t.device)
    return dit(x_t, timestep, image_tokens, cond, keyboard, mouse, frame_mask=mask, frame_offset=frame_offset)


# ------------------------------------------------------------------------------------------------------------
# KV cache

# Cached sites and their layouts (frames along dim 1): "self" [B, T*S, H, D] (S tokens per frame),
# "mouse" [B*S, T, H, D] and "keyboard" [B, T, H, D] (one per frame).


class LayerKV:
    """The cache of one DiT block: ``k[site]`` / ``v[site]`` hold the committed frames of :attr:`KVCache.frames`
    (sites "self", "mouse", "keyboard"), ``cross`` the image-context k/v. A commit replaces these tensors (never
    writes into them), so a :class:`LayerKVView` taken for one forward stays valid for its recomputation under
    gradient checkpointing."""

    def __init__(self, owner: "KVCache") -> None:
        self.owner = owner
        self.k: dict[str, torch.Tensor] = {}
        self.v: dict[str, torch.Tensor] = {}
        self.pending: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.cross: tuple[torch.Tensor, torch.Tensor] | None = None

    def _per_frame(self, site: str) -> int:
        return self.owner.tokens_per_frame if site == "self" else 1

    def view(self) -> "LayerKVView":
        """What the current forward may see: the visible suffix of every site (see :meth:`KVCache.begin`)."""
        o = self.owner
        k, v = {}, {}
        if o.first_visible < len(o.frames):
            for site in self.k:
                cut = o.first_visible * self._per_frame(site)
                k[site], v[site] = self.k[site][:, cut:], self.v[site][:, cut:]
        return LayerKVView(self, k, v, o.action_row_offset, o.writing)

    def cross_kv(self, module: torch.nn.Module, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The context k/v, computed once (recomputed whenever autograd is on, so that training gets gradients)."""
        if torch.is_grad_enabled():
            return module.context_kv(context)
        if self.cross is None or self.cross[0].shape[0] != context.shape[0] or self.cross[0].dtype != context.dtype:
            self.cross = module.context_kv(context)
        return self.cross

    def commit(self, drop: int) -> None:
        """Append the pending block to the cached frames, then drop the first ``drop`` frames of the result."""
        n_old = len(self.owner.frames)
        for site, (k, v) in self.pending.items():
            pf = self._per_frame(site)
            d_old, d_new = min(drop, n_old) * pf, max(0, drop - n_old) * pf
            if site in self.k:
                self.k[site] = torch.cat([self.k[site][:, d_old:], k[:, d_new:]], dim=1)
                self.v[site] = torch.cat([self.v[site][:, d_old:], v[:, d_new:]], dim=1)
            else:
                self.k[site], self.v[site] = k[:, d_new:].clone(), v[:, d_new:].clone()
        self.pending.clear()

    def nbytes(self) -> int:
        ts = [*self.k.values(), *self.v.values(), *(self.cross or ())]
        return sum(t.numel() * t.element_size() for t in ts)


class LayerKVView:
    """The hook that :class:`~model.dit.WorldModelDiT` calls for one block during one cached forward.

    Attributes: k / v: the visible cached frames per site; action_row_offset: the raw action row that
    ``keyboard[:, 0]`` / ``mouse[:, 0]`` hold in this call; writing: keep this block's k/v for the commit.
    """

    __slots__ = ("layer", "k", "v", "action_row_offset", "writing")

    def __init__(self, layer: LayerKV, k: dict[str, torch.Tensor], v: dict[str, torch.Tensor], action_row_offset: int,
                 writing: bool) -> None:
        self.layer, self.k, self.v = layer, k, v
        self.action_row_offset, self.writing = action_row_offset, writing

    def attend(self, site: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention of the current block's queries over [visible cached frames ; current block] (no mask: every
        query of a block sees the same frames); when writing, the block's k/v are kept for :meth:`KVCache.end_commit`."""
        if self.writing:
            self.layer.pending[site] = (k.detach(), v.detach())
        ck = self.k.get(site)
        if ck is not None:
            k = torch.cat([ck.to(k.dtype), k], dim=1)
            v = torch.cat([self.v[site].to(v.dtype), v], dim=1)
        return attention(q, k, v)

    def cross_kv(self, module: torch.nn.Module, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.layer.cross_kv(module, context)


class KVCache:
    """Per-DiT-block caches (:class:`LayerKV`) of the committed latent frames ``frames`` (absolute indices, in
    order, the same for every block and site), with rolling eviction (module docstring).

    Args:
        num_layers: the DiT's blocks. cfg: the causal settings (window, first frame).
    """

    def __init__(self, num_layers: int, cfg: CausalConfig) -> None:
        self.cfg = cfg
        self.layers = [LayerKV(self) for _ in range(num_layers)]
        self.frames: list[int] = []
        self.action_row_offset = 0
        self.writing = False
        self.first_visible = 0
        self.tokens_per_frame = 0
        self.batch = 0
        self._block: tuple[int, int] = (0, 0)
        self._committed_end = 0
        self.views: list[LayerKVView] = []

    @property
    def next_frame(self) -> int:
        """The latent frame the next block must start at (one past the last committed block)."""
        return self._committed_end

    def begin(self, start: int, num_frames: int, tokens_per_frame: int, batch: int) -> None:
        """Called by the DiT at the start of a cached forward over latent frames start .. start + num_frames - 1."""
        size = block_size_at(start, self.cfg)
        if start != self.next_frame:
            raise ValueError(f"this block starts at latent frame {start}, but the next block starts at "
                             f"{self.next_frame}: commit every block (commit_block) before the next, in order")
        if num_frames > size:
            raise ValueError(f"a block at latent frame {start} has at most {size} frames, got {num_frames}")
        if self.frames and (tokens_per_frame != self.tokens_per_frame or batch != self.batch):
            raise ValueError(f"the cache holds {self.batch} x {self.tokens_per_frame} tokens per frame; this block "
                             f"has {batch} x {tokens_per_frame}: reset() the cache for another size")
        check_positions(start + num_frames)
        self.tokens_per_frame, self.batch = tokens_per_frame, batch
        self._block = (start, num_frames)
        end = start + num_frames
        cached = torch.tensor(self.frames, dtype=torch.long)
        vis = frame_visibility(torch.tensor([start]), cached, self.cfg, end)[0] if self.frames else cached.bool()
        # visible cached frames are always a suffix (the window and the hidden frame 0 cut a prefix)
        self.first_visible = int(vis.long().argmax()) if bool(vis.any()) else len(self.frames)
        if not bool(vis[self.first_visible:].all()):
            raise AssertionError("visible cached frames are not a suffix")  # pragma: no cover - invariant
        self.views = [layer.view() for layer in self.layers]

    def layer(self, i: int) -> LayerKVView:
        """The hook of DiT block ``i`` for the forward that :meth:`begin` started."""
        return self.views[i]

    def end_commit(self) -> None:
        """Store the block of the last (writing) forward and evict the frames no later block can see."""
        start, n = self._block
        end = start + n
        new = self.frames + list(range(start, end))
        # the earliest a later block can end is end + 1 (a one-frame block): its window starts at end + 1 - W;
        # a hidden frame 0 is seen by no later block. Both cut a prefix (frames are sorted).
        lo = 0 if self.cfg.local_attn_frames == -1 else end + 1 - self.cfg.local_attn_frames
        keep = [f for f in new if f >= lo and not (self.cfg.hide_first_frame and f == 0)]
        for layer in self.layers:
            layer.commit(len(new) - len(keep))
        self.frames = keep
        self._committed_end = end

    def reset(self) -> None:
        """Forget every cached frame and the context k/v (a new video)."""
        for layer in self.layers:
            layer.k.clear()
            layer.v.clear()
            layer.pending.clear()
            layer.cross = None
        self.frames = []
        self.views = []
        self._committed_end = 0

    def nbytes(self) -> int:
        """Bytes held by the cached tensors."""
        return sum(layer.nbytes() for layer in self.layers)


# ------------------------------------------------------------------------------------------------------------
# streaming engine


def _randn(shape: tuple[int, ...], generator: torch.Generator | Sequence[torch.Generator] | None,
           like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise of ``shape`` from ``generator``, or (a sequence) row i of the batch from generator i
    (per-sample noise: the same draws however the batch is split over processes)."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
        return torch.stack([_randn(tuple(shape[1:]), g, like) for g in generator])
    dev = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=dev, dtype=torch.float32).to(like.device)


def action_rows_needed(start: int, num_frames: int, window_rows: int, ratio: int = 4) -> tuple[int, int]:
    """Raw action rows [lo, hi) that latent frames start .. start + num_frames - 1 need:
    lo = max(0, ratio * start - window_rows) (the first frame's window), hi = 1 + ratio * (start + num_frames - 1)."""
    return max(0, ratio * start - window_rows), 1 + ratio * (start + num_frames - 1)


class CausalStreamer:
    """Block-by-block denoising with a KV cache.

    Args:
        dit: the student DiT (any :class:`WorldModelDiT`; its weights are not changed).
        cfg: causal settings.
        image_tokens: image-encoder tokens [B, Lc, D] of the first frame.
        cond: the i2v condition: a tensor [B, 20, F, h, w] covering every frame to generate (sliced per block),
            a callable ``cond(start, n) -> [B, 20, n, h, w]``, or None (then pass ``cond=`` to each call).
        autocast_dtype: e.g. torch.bfloat16 to run the DiT under autocast (CUDA); None = the DiT's dtype.

    Actions passed to :meth:`denoise_block` / :meth:`commit_block` hold raw rows ``action_row_offset ...`` and
    must cover :func:`action_rows_needed` (a whole-history tensor with offset 0 always does; extra rows are
    ignored).
    """

    def __init__(
        self,
        dit: WorldModelDiT,
        cfg: CausalConfig,
        image_tokens: torch.Tensor,
        cond: torch.Tensor | Callable[[int, int], torch.Tensor] | None = None,
        *,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        self.dit = dit
        self.cfg = cfg
        self.image_tokens = image_tokens
        self.cond = cond
        self.autocast_dtype = autocast_dtype
        self.cache = KVCache(len(dit.blocks), cfg)
        act = dit.cfg.action
        self._ratio = act.vae_time_compression if act is not None else 4
        self._window_rows = act.window_rows if act is not None else 0
        self._cond_memo: tuple[tuple[int, int], torch.Tensor] | None = None
        self._uses: tuple[bool, bool] | None = None  # (keyboard given, mouse given), fixed by the first block

    @property
    def next_frame(self) -> int:
        """The latent frame the next block starts at."""
        return self.cache.next_frame

    def reset(self, image_tokens: torch.Tensor | None = None,
              cond: torch.Tensor | Callable[[int, int], torch.Tensor] | None = None) -> None:
        """Start a new video (optionally with new image tokens / condition); the DiT is kept."""
        self.cache.reset()
        if image_tokens is not None:
            self.image_tokens = image_tokens
        if cond is not None:
            self.cond = cond
        self._cond_memo = None
        self._uses = None

    def _cond(self, cond: torch.Tensor | None, start: int, n: int) -> torch.Tensor | None:
        if cond is not None:
            return cond
        if self.cond is None:
            return None
        if callable(self.cond):  # called once per block (a streaming encoder must not be pushed twice)
            if self._cond_memo is None or self._cond_memo[0] != (start, n):
                self._cond_memo = ((start, n), self.cond(start, n))
            return self._cond_memo[1]
        if self.cond.shape[2] < start + n:
            raise ValueError(f"cond covers {self.cond.shape[2]} latent frames; block needs frames up to {start + n - 1}")
        return self.cond[:, :, start : start + n]

    def _actions(self, a: torch.Tensor | None, name: str, start: int, n: int, row0: int) -> torch.Tensor | None:
        if a is None:
            return None
        if a.ndim != 3:
            raise ValueError(f"{name} must be [B, rows, channels], got shape {tuple(a.shape)}")
        lo, hi = action_rows_needed(start, n, self._window_rows, self._ratio)
        if row0 > lo or row0 + a.shape[1] < hi:
            raise ValueError(
                f"{name} holds raw rows {row0}..{row0 + a.shape[1] - 1}; latent frames {start}..{start + n - 1} need "
                f"rows {lo}..{hi - 1} (1 + {self._ratio} x (last latent frame) rows from the start of the video)")
        a = a[:, lo - row0 : hi - row0]
        if not torch.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinite values in raw rows {lo}..{hi - 1}")
        return a

    def flow(
        self,
        x_block: torch.Tensor,
        timestep: torch.Tensor | float,
        start_frame: int,
        keyboard: torch.Tensor | None,
        mouse: torch.Tensor | None,
        *,
        cond: torch.Tensor | None = None,
        action_row_offset: int = 0,
        write: bool = False,
    ) -> torch.Tensor:
        """One cached DiT forward on a block at ``start_frame``: the flow v [B, 16, n, h, w]. ``write``: keep the
        block's k/v and commit them to the cache afterwards (what :meth:`commit_block` does)."""
        b, _, n = x_block.shape[:3]
        check_positions(start_frame + n)
        uses = (keyboard is not None, mouse is not None)
        if self._uses is not None and uses != self._uses:
            raise ValueError(f"(keyboard, mouse) given = {uses}, but the cache was built with {self._uses}: pass the "
                             "same action inputs for every block")
        kb = self._actions(keyboard, "keyboard", start_frame, n, action_row_offset)
        ms = self._actions(mouse, "mouse", start_frame, n, action_row_offset)
        c = self._cond(cond, start_frame, n)
        if not torch.is_tensor(timestep):
            timestep = torch.full((b,), float(timestep), device=x_block.device)
        cache = self.cache
        cache.action_row_offset = action_rows_needed(start_frame, n, self._window_rows, self._ratio)[0]
        cache.writing = write
        dev = x_block.device.type
        if self.autocast_dtype is None:  # a DiT held in bf16/fp16 takes its own dtype
            x_block = x_block.to(self.dit.patch_embedding.weight.dtype)
        try:
            with torch.autocast(dev, dtype=self.autocast_dtype or torch.float32, enabled=self.autocast_dtype is not None):
                v = self.dit(x_block, timestep, self.image_tokens, c, kb, ms, frame_offset=start_frame, kv_cache=cache)
        except BaseException:
            for layer in cache.layers:
                layer.pending.clear()
            raise
        finally:
            cache.writing = False
        if write:
            cache.end_commit()
            self._uses = uses
        return v.float()

    def denoise_block(
        self,
        x_block: torch.Tensor,
        sigma: float,
        start_frame: int,
        keyboard: torch.Tensor | None,
        mouse: torch.Tensor | None,
        *,
        cond: torch.Tensor | None = None,
        action_row_offset: int = 0,
    ) -> torch.Tensor:
        """x0 prediction x_s - s v for a block at noise level ``sigma`` (reads the cache, does not change it).

        Args:
            x_block: [B, 16, n, h, w] at level ``sigma``; n = the block's size (or less for a last, short block).
            sigma: noise level in [0, 1] (timestep 1000 sigma).
            start_frame: absolute latent index of the block (must be :attr:`next_frame`).
            keyboard / mouse: per raw frame from row ``action_row_offset`` (class doc); mouse None for templerun.
        """
        v = self.flow(x_block, 1000.0 * float(sigma), start_frame, keyboard, mouse, cond=cond,
                      action_row_offset=action_row_offset)
        return x_block.float() - float(sigma) * v

    @torch.no_grad()
    def commit_block(
        self,
        x0_block: torch.Tensor,
        start_frame: int,
        keyboard: torch.Tensor | None,
        mouse: torch.Tensor | None,
        *,
        cond: torch.Tensor | None = None,
        action_row_offset: int = 0,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> None:
        """Rewrite the cache with the clean block: one forward at level ``cfg.context_noise`` on
        (1 - s_c) x0 + s_c eps, keeping its k/v (no autograd)."""
        s = self.cfg.context_noise
        x = x0_block.float()
        if s > 0:
            x = (1 - s) * x + s * _randn(tuple(x.shape), generator, x)
        self.flow(x.to(x0_block.dtype), 1000.0 * s, start_frame, keyboard, mouse, cond=cond,
                  action_row_offset=action_row_offset, write=True)

    def generate_block(
        self,
        noise: torch.Tensor,
        start_frame: int,
        keyboard: torch.Tensor | None,
        mouse: torch.Tensor | None,
        *,
        cond: torch.Tensor | None = None,
        action_row_offset: int = 0,
        exit_step: int | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        grad: bool = False,
        commit: bool = True,
    ) -> torch.Tensor:
        """Few-step generation of one block from ``noise`` (module docstring), then (``commit``) the cache
        rewrite. Returns the clean block [B, 16, n, h, w] (float32); see :func:`rollout` for ``exit_step``/``grad``."""
        sig = self.cfg.sigmas
        last = len(sig) - 1 if exit_step is None else int(exit_step)
        if not 0 <= last < len(sig):
            raise ValueError(f"exit_step must be in 0..{len(sig) - 1} (an index into cfg.sigmas), got {exit_step}")
        c = self._cond(cond, start_frame, noise.shape[2])
        kw = dict(cond=c, action_row_offset=action_row_offset)
        x = noise.float()
        x0 = x
        for i in range(last + 1):
            with torch.set_grad_enabled(grad and i == last):
                x0 = self.denoise_block(x, sig[i], start_frame, keyboard, mouse, **kw)
            if i < last:
                with torch.no_grad():
                    nxt = sig[i + 1]
                    x = (1 - nxt) * x0 + nxt * _randn(tuple(x0.shape), generator, x0)
        if commit:
            self.commit_block(x0.detach(), start_frame, keyboard, mouse, generator=generator, **kw)
        return x0


def rollout(
    dit: WorldModelDiT,
    noise: torch.Tensor,
    image_tokens: torch.Tensor,
    cond: torch.Tensor | None,
    keyboard: torch.Tensor | None,
    mouse: torch.Tensor | None,
    cfg: CausalConfig,
    *,
    exit_step: int | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    grad: bool = False,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Self-Forcing's block-by-block generation with the KV cache (the DMD generator rollout).

    For each block (:func:`block_spans`) starting from ``noise[:, :, block]``: for i = 0 .. exit,
    x0 = x - sigma_i DiT(x, 1000 sigma_i); x <- (1 - sigma_{i+1}) x0 + sigma_{i+1} eps (fresh noise from
    ``generator``) while i < exit; the block's output is the x0 of step ``exit``; then the cache is rewritten with
    it at ``cfg.context_noise`` (no autograd).

    Args:
        noise: [B, 16, F, h, w] initial noise. image_tokens [B, Lc, D]; cond [B, 20, F, h, w];
            keyboard / mouse per raw frame [B, 1 + 4 (F - 1), K] (mouse None for templerun).
        exit_step: index into ``cfg.sigmas`` at which every block stops (None = the last step).
        generator: the RNG of the re-noising between steps, or one generator per sample (a list).
        grad: keep the autograd graph of the exit-step forward of every block (earlier steps and the cache
            rewrite run without it); False runs everything without autograd.

    Returns:
        clean latents [B, 16, F, h, w] (float32).
    """
    f = noise.shape[2]
    check_positions(f)
    streamer = CausalStreamer(dit, cfg, image_tokens, cond, autocast_dtype=autocast_dtype)
    outs = []
    for start, n in block_spans(f, cfg):
        outs.append(streamer.generate_block(noise[:, :, start : start + n], start, keyboard, mouse,
                                            exit_step=exit_step, generator=generator, grad=grad))
    return torch.cat(outs, dim=2)


__all__ = [
    "MAX_LATENT_FRAMES",
    "CausalConfig",
    "CausalStreamer",
    "KVCache",
    "LayerKV",
    "LayerKVView",
    "PositionLimitError",
    "action_rows_needed",
    "block_mask",
    "block_size_at",
    "block_spans",
    "block_start",
    "causal_forward",
    "check_positions",
    "frame_visibility",
    "rollout",
]
