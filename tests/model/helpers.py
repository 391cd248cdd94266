"""Helpers shared by the model tests: key fixtures, tiny inputs, randomising zero-initialised layers."""

from __future__ import annotations

from pathlib import Path

import torch

import model

FIXTURES = Path(__file__).parent / "fixtures"


def read_key_fixture(name: str) -> dict[str, tuple[int, ...]]:
    """Parse a ``<key> <d0>,<d1>,...`` fixture file into {key: shape}."""
    out: dict[str, tuple[int, ...]] = {}
    for line in (FIXTURES / name).read_text().splitlines():
        key, _, shape = line.partition(" ")
        out[key] = tuple(int(s) for s in shape.split(",") if s)
    return out


def randomize_zero_init(module: torch.nn.Module, std: float = 0.05) -> None:
    """Give the zero-initialised output projections (DiT head, action projections) random values so that
    every parameter influences the output."""
    for name, p in module.named_parameters():
        if name.endswith(("head.head.weight", "proj_mouse.weight", "proj_keyboard.weight")):
            with torch.no_grad():
                p.normal_(0.0, std)


def tiny_inputs(cfg: model.ModelConfig, batch: int = 2, frames: int = 4, height: int = 6, width: int = 10):
    """Random DiT inputs for a tiny config: latents, timesteps, image tokens, cond, keyboard, mouse."""
    act = cfg.dit.action
    n_raw = 1 + act.vae_time_compression * (frames - 1)
    x = torch.randn(batch, cfg.dit.out_dim, frames, height, width)
    t = torch.rand(batch) * 1000
    img = torch.randn(batch, cfg.image_encoder.num_tokens, cfg.image_encoder.dim)
    cond = model.i2v_condition(torch.randn(batch, cfg.vae.z_dim, frames, height, width))
    keyboard = torch.randint(0, 2, (batch, n_raw, act.keyboard_dim)).float()
    mouse = 0.1 * torch.randn(batch, n_raw, act.mouse_dim) if act.mouse_dim else None
    return x, t, img, cond, keyboard, mouse
