"""The training log of a run: ``log.jsonl`` always, TensorBoard event files or Weights & Biases beside it.

    run = RunLog(out_dir, logger="tensorboard", config=cfg)   # out_dir/log.jsonl + out_dir/tensorboard/
    run.scalars(step, {"loss": 0.3, "lr": 1e-3}, prefix="train")  # a log.jsonl row; train/loss, train/lr
    run.images(step, "samples", frames)                         # uint8 [N, H, W, 3] as one image grid
    run.close()

``logger``: ``tensorboard`` (events in ``<out_dir>/tensorboard``: ``tensorboard --logdir <out_dir>``), ``wandb``
(``wandb`` installed and logged in; the run is named after the folder, offline when ``WANDB_MODE=offline``) or
``none`` (log.jsonl only). log.jsonl keeps one JSON object per row, non-finite values written as null. Only the
main process of a torchrun job logs (``enabled=False`` elsewhere).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np

from capture.settings import Field

LOGGERS = ("tensorboard", "wandb", "none")
#: The type of a ``logger`` config key.
LoggerName = Literal[LOGGERS]
TENSORBOARD_DIR = "tensorboard"


def logger_field(default: str = "tensorboard") -> Any:
    """The ``logger`` key of a section (train, distill): one declaration, one doc."""
    return Field(default, description="where training curves go besides log.jsonl: tensorboard (<run>/tensorboard), "
                                      "wandb (needs the wandb package) or none")


class LoggerUnavailable(RuntimeError):
    """The configured logger's package is not installed."""


def image_grid(frames: np.ndarray, cols: int | None = None) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` frames tiled into one ``[rows * H, cols * W, 3]`` image (row-major, black padding)."""
    frames = np.asarray(frames)
    n, h, w, c = frames.shape
    cols = cols or n
    rows = -(-n // cols)
    out = np.zeros((rows * h, cols * w, c), np.uint8)
    for i, f in enumerate(frames):
        r, k = divmod(i, cols)
        out[r * h:(r + 1) * h, k * w:(k + 1) * w] = f
    return out


class RunLog:
    """log.jsonl plus the chosen logger (module doc). ``history``: every row logged by this object."""

    def __init__(self, out_dir: str | os.PathLike, logger: str = "tensorboard", *, config: Any = None,
                 enabled: bool = True, jsonl: str = "log.jsonl") -> None:
        if logger not in LOGGERS:
            raise ValueError(f"logger must be one of {', '.join(LOGGERS)}, got {logger!r}")
        self.out_dir = Path(out_dir)
        self.logger, self.enabled = logger, enabled
        self.path = self.out_dir / jsonl
        self.history: list[dict[str, Any]] = []
        self._tb: Any = None
        self._wandb: Any = None
        if not enabled or logger == "none":
            return
        if logger == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise LoggerUnavailable(f"logger tensorboard: the tensorboard package is not installed ({e}); "
                                        "pip install tensorboard, or set logger: none") from None
            self._tb = SummaryWriter(log_dir=os.fspath(self.out_dir / TENSORBOARD_DIR))
        else:
            try:
                import wandb
            except ImportError:
                raise LoggerUnavailable("logger wandb: the wandb package is not installed; pip install wandb, "
                                        "or set logger: tensorboard") from None
            from .bundle import to_jsonable

            self._wandb = wandb.init(project=os.environ.get("WANDB_PROJECT", "playmill"), name=self.out_dir.name,
                                     dir=os.fspath(self.out_dir), resume="allow",
                                     config=to_jsonable(config) if config is not None else None)

    @property
    def tensorboard_dir(self) -> Path | None:
        """Where the event files are (None unless logger is tensorboard)."""
        return self.out_dir / TENSORBOARD_DIR if self._tb is not None else None

    def scalars(self, step: int, row: Mapping[str, Any], prefix: str = "", jsonl: str | None = None) -> None:
        """Append ``{"step": step, **row}`` to log.jsonl (and :attr:`history`) and send each finite number as
        ``<prefix>/<key>``. ``jsonl``: another file of the run folder for rows of another phase (the VAE
        warm-up's ``vae_log.jsonl``), kept out of :attr:`history`."""
        full = {"step": int(step), **row}
        if jsonl is None:
            self.history.append(full)
        if not self.enabled:
            return
        clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in full.items()}
        with open(self.out_dir / jsonl if jsonl else self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(clean, allow_nan=False) + "\n")
        nums = {f"{prefix}/{k}" if prefix else k: float(v) for k, v in row.items()
                if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)
                and math.isfinite(float(v))}
        if self._tb is not None:
            for k, v in nums.items():
                self._tb.add_scalar(k, v, int(step))
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(nums, step=int(step))

    def last(self, key: str) -> Any:
        """The last value of ``key`` logged by this object (None when none was)."""
        vals = [row[key] for row in self.history if row.get(key) is not None]
        return vals[-1] if vals else None

    def images(self, step: int, tag: str, frames: np.ndarray, cols: int | None = None) -> None:
        """Log uint8 ``[N, H, W, 3]`` frames as one grid image (TensorBoard's Images tab, or a wandb Image)."""
        if not self.enabled or (self._tb is None and self._wandb is None):
            return
        grid = image_grid(np.asarray(frames, np.uint8), cols)
        if self._tb is not None:
            self._tb.add_image(tag, grid, int(step), dataformats="HWC")
            self._tb.flush()
        if self._wandb is not None:
            import wandb

            self._wandb.log({tag: wandb.Image(grid)}, step=int(step))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def frames_uint8(video: Any) -> np.ndarray:
    """A video tensor in [-1, 1], ``[C, T, H, W]`` (the VAE's layout), as uint8 ``[T, H, W, 3]``."""
    import torch

    v = video.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return v.permute(1, 2, 3, 0).cpu().numpy()


__all__ = ["LOGGERS", "LoggerName", "LoggerUnavailable", "RunLog", "frames_uint8", "image_grid", "logger_field"]
