"""Procedural, deterministic, tileable textures (NumPy) and the material catalogue of the sandbox.

Every texture is a ``uint8[S, S, 3]`` RGB image, top row first, with ``S`` a power of two (the software
renderer needs power-of-two textures) and seamless in both directions so it can repeat across a surface.
Each texture has its own fixed seed: the same name always gives the same pixels, in any process.

A :class:`Material` names a texture, the size in metres one repeat of it covers on a surface, and a tint.
Scene layouts refer to materials by name; the renderer looks them up here.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

RGB = tuple[float, float, float]


# --------------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------------


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode("utf-8")))


def fractal_noise(rng: np.random.Generator, size: int, beta: float = 2.0) -> np.ndarray:
    """Seamless fractal noise in [0, 1] (float32 ``[size, size]``): white noise shaped to a 1/f^beta spectrum."""
    white = rng.standard_normal((size, size))
    f = np.fft.fftfreq(size)
    k = np.hypot(f[None, :], f[:, None])
    k[0, 0] = 1.0
    spec = np.fft.fft2(white) / k ** (beta / 2.0)
    spec[0, 0] = 0.0
    n = np.real(np.fft.ifft2(spec))
    n = (n - n.mean()) / (n.std() + 1e-12)
    return np.clip(0.5 + 0.17 * n, 0.0, 1.0).astype(np.float32)


def _colorize(value: np.ndarray, dark: RGB, light: RGB) -> np.ndarray:
    """Map a [0, 1] field to a colour ramp; float32 ``[..., 3]`` in [0, 1]."""
    d = np.asarray(dark, np.float32)
    l_ = np.asarray(light, np.float32)
    return d + (l_ - d) * value[..., None]


def _to_u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def _grid_lines(size: int, cells: int, width_px: int) -> np.ndarray:
    """Boolean mask of a seamless grid of ``cells`` x ``cells`` with joints ``width_px`` wide."""
    idx = np.arange(size)
    pitch = size // cells
    on = (idx % pitch) < width_px
    return on[None, :] | on[:, None]


# --------------------------------------------------------------------------------------------------
# textures (one function per texture, each returns float32 RGB in [0, 1])
# --------------------------------------------------------------------------------------------------


def _asphalt(rng: np.random.Generator, s: int = 256) -> np.ndarray:
    base = fractal_noise(rng, s, 1.6) * 0.6 + fractal_noise(rng, s, 0.3) * 0.4
    img = _colorize(base, (0.16, 0.16, 0.17), (0.34, 0.34, 0.35))
    speck = rng.random((s, s)) > 0.985
    img[speck] += 0.12
    return img


def _road(rng: np.random.Generator) -> np.ndarray:
    """Road surface across its full width (v: across, image rows) and 6 m along (u: columns).

    A dashed centre line (3 m dash, 3 m gap) and solid edge lines."""
    s = 256
    img = _asphalt(rng, s)
    rows = np.arange(s)
    cols = np.arange(s)
    centre = np.abs(rows - s / 2 + 0.5) < 2.5
    dash = cols < s // 2
    img[np.ix_(centre, dash)] = (0.85, 0.82, 0.70)
    edge = (np.abs(rows - 0.06 * s) < 1.8) | (np.abs(rows - 0.94 * s) < 1.8)
    img[edge, :] = (0.80, 0.80, 0.78)
    return img


def _crosswalk(rng: np.random.Generator) -> np.ndarray:
    """Zebra stripes running along v (image rows); u spans 1 m across the stripes."""
    s = 128
    img = _asphalt(rng, s)
    cols = np.arange(s)
    stripe = (cols % (s // 2)) < s // 4
    img[:, stripe] = img[:, stripe] * 0.25 + 0.68
    return img


def _paving(rng: np.random.Generator, cells: int, dark: RGB, light: RGB, joint: RGB, s: int = 256) -> np.ndarray:
    base = fractal_noise(rng, s, 1.8) * 0.5 + fractal_noise(rng, s, 0.5) * 0.5
    img = _colorize(base, dark, light)
    pitch = s // cells
    shade = rng.uniform(-0.05, 0.05, (cells, cells)).astype(np.float32)
    img += np.repeat(np.repeat(shade, pitch, 0), pitch, 1)[..., None]
    img[_grid_lines(s, cells, 3)] = joint
    return img


def _bricks(rng: np.random.Generator, s: int, rows: int, per_row: int, dark: RGB, light: RGB, mortar: RGB) -> np.ndarray:
    """Running-bond bricks, seamless: ``rows`` courses and ``per_row`` bricks per course."""
    bh, bw = s // rows, s // per_row
    y, x = np.mgrid[0:s, 0:s]
    course = y // bh
    xoff = (x + (course % 2) * (bw // 2)) % s
    brick_id = course * per_row + xoff // bw
    tone = rng.random(rows * per_row).astype(np.float32)[brick_id]
    noise = fractal_noise(rng, s, 1.2)
    img = _colorize(np.clip(0.65 * tone + 0.35 * noise, 0, 1), dark, light)
    mortar_mask = ((y % bh) < 2) | ((xoff % bw) < 2)
    img[mortar_mask] = np.asarray(mortar, np.float32) * (0.9 + 0.2 * noise[mortar_mask, None])
    return img


def _plaster(rng: np.random.Generator, light: RGB = (0.92, 0.91, 0.88), s: int = 128) -> np.ndarray:
    n = fractal_noise(rng, s, 1.4)
    return _colorize(n, tuple(0.84 * c for c in light), light)


FACADE_STYLES: dict[str, dict] = {
    "brick_red": {"wall": "brick", "dark": (0.42, 0.16, 0.11), "light": (0.66, 0.30, 0.20), "frame": (0.90, 0.88, 0.82)},
    "brick_brown": {"wall": "brick", "dark": (0.30, 0.20, 0.14), "light": (0.52, 0.38, 0.27), "frame": (0.85, 0.84, 0.80)},
    "plaster_beige": {"wall": "plaster", "dark": (0.72, 0.64, 0.50), "light": (0.88, 0.80, 0.64), "frame": (0.35, 0.28, 0.22)},
    "plaster_blue": {"wall": "plaster", "dark": (0.50, 0.60, 0.68), "light": (0.66, 0.75, 0.82), "frame": (0.95, 0.95, 0.95)},
    "concrete": {"wall": "plaster", "dark": (0.50, 0.50, 0.49), "light": (0.68, 0.68, 0.66), "frame": (0.22, 0.22, 0.24)},
    "glass_office": {"wall": "glass", "dark": (0.20, 0.28, 0.34), "light": (0.38, 0.50, 0.58), "frame": (0.62, 0.64, 0.66)},
}


def _facade_bay(rng: np.random.Generator, style: str, lit: bool | None) -> np.ndarray:
    """One facade bay (3 m wide x 3.2 m storey, 128 px): wall, one window with frame and sill.

    ``lit``: None for the day look (glass reflecting the sky), True for a warm lit window, False for a
    dark one (night)."""
    st = FACADE_STYLES[style]
    s = 128
    if st["wall"] == "brick":
        img = _bricks(rng, s, 16, 4, st["dark"], st["light"], (0.72, 0.70, 0.66))
    else:
        img = _plaster(rng, st["light"], s)
    y, x = np.mgrid[0:s, 0:s]
    if st["wall"] == "glass":
        x0, x1, y0, y1 = 4, s - 4, 10, s - 14
    else:
        x0, x1, y0, y1 = int(0.22 * s), int(0.78 * s), int(0.18 * s), int(0.72 * s)
    inside = (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
    frame = inside & ~((x >= x0 + 4) & (x < x1 - 4) & (y >= y0 + 4) & (y < y1 - 4))
    mullion = inside & ((np.abs(x - (x0 + x1) / 2) < 2) | (np.abs(y - (y0 + 0.4 * (y1 - y0))) < 2))
    glass = inside & ~frame & ~mullion
    gy = np.clip((y - y0) / max(1, y1 - y0), 0, 1)
    if lit is None:
        pane = _colorize(gy, (0.55, 0.66, 0.76), (0.16, 0.20, 0.26))
    elif lit:
        pane = _colorize(gy, (1.0, 0.86, 0.55), (0.86, 0.62, 0.30))
    else:
        pane = _colorize(gy, (0.10, 0.11, 0.14), (0.05, 0.06, 0.08))
    img[glass] = pane[glass]
    img[frame | mullion] = st["frame"]
    if st["wall"] != "glass":
        sill = (x >= x0 - 4) & (x < x1 + 4) & (y >= y1) & (y < y1 + 5)
        img[sill] = np.asarray(st["frame"], np.float32) * 0.9
    return img


def _facade(rng: np.random.Generator, style: str, night: bool) -> np.ndarray:
    """Two bays by two storeys (6 m x 6.4 m, 256 px). At night a deterministic subset of windows is lit."""
    lit = rng.random(4) < 0.55 if night else [None] * 4
    if night and not np.any(lit):
        lit[0] = True
    bays = [_facade_bay(rng, style, None if lit[i] is None else bool(lit[i])) for i in range(4)]
    return np.concatenate([np.concatenate(bays[:2], axis=1), np.concatenate(bays[2:], axis=1)], axis=0)


def _grass(rng: np.random.Generator) -> np.ndarray:
    s = 256
    n = fractal_noise(rng, s, 1.8) * 0.55 + fractal_noise(rng, s, 0.2) * 0.45
    img = _colorize(n, (0.16, 0.30, 0.08), (0.38, 0.56, 0.20))
    blades = rng.random((s, s)) > 0.93
    img[blades] *= 1.25
    return img


def _dirt(rng: np.random.Generator) -> np.ndarray:
    s = 256
    n = fractal_noise(rng, s, 1.7) * 0.6 + fractal_noise(rng, s, 0.4) * 0.4
    img = _colorize(n, (0.40, 0.32, 0.22), (0.64, 0.55, 0.40))
    pebbles = rng.random((s, s)) > 0.97
    img[pebbles] = img[pebbles] * 0.6 + 0.32
    return img


def _gravel(rng: np.random.Generator) -> np.ndarray:
    s = 128
    n = fractal_noise(rng, s, 0.2)
    return _colorize(n, (0.30, 0.29, 0.28), (0.55, 0.54, 0.52))


def _bark(rng: np.random.Generator) -> np.ndarray:
    s = 128
    stretch = fractal_noise(rng, s, 1.0)
    stretch = np.repeat(stretch[:, ::4], 4, axis=1)  # vertical grain
    vert = np.cumsum(rng.standard_normal((s, s)) * 0.08, axis=0)
    vert = (vert - vert.min()) / (np.ptp(vert) + 1e-9)
    n = np.clip(0.6 * stretch + 0.4 * np.roll(stretch, 7, axis=0) * (0.7 + 0.3 * vert), 0, 1)
    return _colorize(n, (0.18, 0.12, 0.08), (0.42, 0.32, 0.22))


def _leaves(rng: np.random.Generator, dark: RGB, light: RGB) -> np.ndarray:
    s = 128
    n = fractal_noise(rng, s, 1.0) * 0.5 + fractal_noise(rng, s, 0.1) * 0.5
    img = _colorize(n, dark, light)
    holes = rng.random((s, s)) > 0.96
    img[holes] *= 0.45
    return img


def _rock(rng: np.random.Generator) -> np.ndarray:
    s = 128
    n = fractal_noise(rng, s, 2.2) * 0.7 + fractal_noise(rng, s, 0.6) * 0.3
    return _colorize(n, (0.30, 0.29, 0.27), (0.66, 0.64, 0.60))


def _planks(rng: np.random.Generator, n_planks: int, dark: RGB, light: RGB, stagger: bool) -> np.ndarray:
    s = 256
    y, x = np.mgrid[0:s, 0:s]
    ph = s // n_planks
    plank = y // ph
    grain = fractal_noise(rng, s, 1.0)
    grain = np.repeat(grain[::8, :], 8, axis=0)  # stretched along u
    if stagger:
        off = (plank * 61) % s
        seg = ((x + off) % s) // (s // 2)
        tone = rng.random((n_planks, 2)).astype(np.float32)[plank, seg]
        joint = (((x + off) % (s // 2)) < 2) | ((y % ph) < 2)
    else:
        tone = rng.random(n_planks).astype(np.float32)[plank]
        joint = (y % ph) < 2
    img = _colorize(np.clip(0.5 * tone + 0.5 * grain, 0, 1), dark, light)
    img[joint] *= 0.55
    return img


def _tiles(rng: np.random.Generator, a: RGB, b: RGB) -> np.ndarray:
    s = 256
    y, x = np.mgrid[0:s, 0:s]
    checker = ((x // (s // 4)) + (y // (s // 4))) % 2
    n = fractal_noise(rng, s, 1.5)
    img = np.where(checker[..., None] == 0, np.asarray(a, np.float32), np.asarray(b, np.float32))
    img = img * (0.93 + 0.1 * n[..., None])
    img[_grid_lines(s, 4, 3)] = (0.55, 0.55, 0.52)
    return img


def _carpet(rng: np.random.Generator) -> np.ndarray:
    s = 128
    n = fractal_noise(rng, s, 0.4) * 0.7 + fractal_noise(rng, s, 1.8) * 0.3
    return _colorize(n, (0.55, 0.55, 0.55), (0.85, 0.85, 0.85))


def _ceiling(rng: np.random.Generator) -> np.ndarray:
    """Four 60 cm ceiling tiles; one of them is a light panel (bright)."""
    s = 128
    img = _plaster(rng, (0.90, 0.90, 0.88), s)
    img[_grid_lines(s, 2, 2)] = (0.60, 0.60, 0.58)
    img[8:56, 8:56] = (1.0, 0.99, 0.95)
    return img


def _books(rng: np.random.Generator) -> np.ndarray:
    """Shelf front: four shelves of book spines."""
    s = 128
    img = np.zeros((s, s, 3), np.float32)
    img[:] = (0.36, 0.24, 0.14)
    x = 0
    rows = [(4, 30), (36, 62), (68, 94), (100, 126)]
    palette = np.array([(0.55, 0.12, 0.10), (0.12, 0.25, 0.50), (0.15, 0.40, 0.18), (0.75, 0.65, 0.35),
                        (0.30, 0.30, 0.32), (0.85, 0.82, 0.75), (0.50, 0.20, 0.45)], np.float32)
    for y0, y1 in rows:
        x = 0
        while x < s:
            w = int(rng.integers(4, 9))
            h = int(rng.integers(0, 8))
            img[y0 + h:y1, x:min(s, x + w - 1)] = palette[rng.integers(len(palette))] * rng.uniform(0.8, 1.1)
            x += w
    return img


def _crate(rng: np.random.Generator) -> np.ndarray:
    s = 128
    img = _planks(rng, 4, (0.45, 0.32, 0.18), (0.70, 0.54, 0.32), False)[::2, ::2]
    img[:8] = img[-8:] = (0.38, 0.26, 0.14)
    img[:, :8] = img[:, -8:] = (0.38, 0.26, 0.14)
    y, x = np.mgrid[0:s, 0:s]
    img[np.abs(x - y) < 5] = (0.40, 0.28, 0.15)
    return img


def _water(rng: np.random.Generator) -> np.ndarray:
    s = 128
    n = fractal_noise(rng, s, 1.2)
    return _colorize(n, (0.10, 0.22, 0.30), (0.28, 0.46, 0.55))


def _hedge(rng: np.random.Generator) -> np.ndarray:
    return _leaves(rng, (0.08, 0.20, 0.06), (0.22, 0.42, 0.14))


def _metal(rng: np.random.Generator) -> np.ndarray:
    s = 64
    n = fractal_noise(rng, s, 0.8)
    return _colorize(n, (0.55, 0.56, 0.58), (0.72, 0.73, 0.75))


def _car_body(rng: np.random.Generator) -> np.ndarray:
    """White paint (tinted per vehicle by vertex colour) with a darker lower band and door seams."""
    s = 64
    n = fractal_noise(rng, s, 2.5)
    img = _colorize(n, (0.90, 0.90, 0.90), (1.0, 1.0, 1.0))
    img[s - 10:] *= 0.55
    img[:, [20, 42]] *= 0.6
    return img


def _car_glass(rng: np.random.Generator) -> np.ndarray:
    s = 64
    y = np.linspace(0, 1, s, dtype=np.float32)[:, None] * np.ones((1, s), np.float32)
    return _colorize(y, (0.45, 0.55, 0.62), (0.08, 0.10, 0.14))


TEXTURES: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "asphalt": _asphalt,
    "road": _road,
    "crosswalk": _crosswalk,
    "sidewalk": lambda r: _paving(r, 4, (0.55, 0.55, 0.53), (0.74, 0.74, 0.72), (0.42, 0.42, 0.41)),
    "plaza": lambda r: _paving(r, 8, (0.58, 0.50, 0.42), (0.78, 0.70, 0.60), (0.40, 0.36, 0.32)),
    "curb": lambda r: _paving(r, 2, (0.62, 0.62, 0.60), (0.82, 0.82, 0.80), (0.50, 0.50, 0.48), 64),
    "concrete": lambda r: _plaster(r, (0.66, 0.66, 0.64)),
    "roof": _gravel,
    "grass": _grass,
    "dirt": _dirt,
    "gravel": _gravel,
    "bark": _bark,
    "leaves": lambda r: _leaves(r, (0.10, 0.26, 0.06), (0.30, 0.52, 0.14)),
    "leaves_dark": lambda r: _leaves(r, (0.04, 0.16, 0.08), (0.14, 0.34, 0.16)),
    "leaves_autumn": lambda r: _leaves(r, (0.45, 0.20, 0.04), (0.85, 0.55, 0.12)),
    "rock": _rock,
    "hedge": _hedge,
    "wood": lambda r: _planks(r, 8, (0.36, 0.22, 0.12), (0.62, 0.44, 0.26), False),
    "parquet": lambda r: _planks(r, 8, (0.42, 0.27, 0.14), (0.70, 0.50, 0.30), True),
    "tiles": lambda r: _tiles(r, (0.86, 0.86, 0.84), (0.70, 0.70, 0.68)),
    "tiles_dark": lambda r: _tiles(r, (0.30, 0.32, 0.36), (0.52, 0.54, 0.58)),
    "carpet": _carpet,
    "plaster": _plaster,
    "bricks": lambda r: _bricks(r, 128, 16, 4, (0.45, 0.18, 0.12), (0.68, 0.32, 0.22), (0.70, 0.68, 0.64)),
    "ceiling": _ceiling,
    "books": _books,
    "crate": _crate,
    "water": _water,
    "metal": _metal,
    "car_body": _car_body,
    "car_glass": _car_glass,
}
for _style in FACADE_STYLES:
    TEXTURES[f"facade_{_style}"] = (lambda st: (lambda r: _facade(r, st, False)))(_style)
    TEXTURES[f"facade_{_style}_night"] = (lambda st: (lambda r: _facade(r, st, True)))(_style)


@lru_cache(maxsize=None)
def _texture_cached(name: str) -> np.ndarray:
    img = _to_u8(TEXTURES[name](_rng(name)))
    img.setflags(write=False)
    return img


def texture_image(name: str) -> np.ndarray:
    """The texture ``name`` as read-only ``uint8[S, S, 3]`` RGB, top row first (cached per process)."""
    if name not in TEXTURES:
        raise KeyError(f"unknown texture {name!r}; known: {sorted(TEXTURES)}")
    return _texture_cached(name)


# --------------------------------------------------------------------------------------------------
# materials
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Material:
    """A texture, the metres one repeat covers along ``(u, v)``, and an RGB tint (multiplies the texture).

    ``night_texture`` replaces ``texture`` when the scene is lit as night (lit windows), if set.
    ``unlit``: drawn at full brightness regardless of the lights (light panels, glass showing the sky)."""

    texture: str | None
    repeat_m: tuple[float, float] = (1.0, 1.0)
    tint: RGB = (1.0, 1.0, 1.0)
    night_texture: str | None = None
    unlit: bool = False


MATERIALS: dict[str, Material] = {
    "road": Material("road", (6.0, 1.0)),  # v spans the whole road width (set by the layout's uv)
    "asphalt": Material("asphalt", (4.0, 4.0)),
    "crosswalk": Material("crosswalk", (1.0, 1.0)),
    "sidewalk": Material("sidewalk", (2.0, 2.0)),
    "curb": Material("curb", (1.0, 0.5)),
    "plaza": Material("plaza", (4.0, 4.0)),
    "concrete": Material("concrete", (3.0, 3.0)),
    "roof": Material("roof", (3.0, 3.0), (0.8, 0.8, 0.8)),
    "grass": Material("grass", (3.0, 3.0)),
    "dirt": Material("dirt", (3.0, 3.0)),
    "gravel": Material("gravel", (2.0, 2.0)),
    "bark": Material("bark", (1.0, 1.5)),
    "leaves": Material("leaves", (1.5, 1.5)),
    "leaves_dark": Material("leaves_dark", (1.5, 1.5)),
    "leaves_autumn": Material("leaves_autumn", (1.5, 1.5)),
    "rock": Material("rock", (1.5, 1.5)),
    "hedge": Material("hedge", (1.5, 1.5)),
    "wood": Material("wood", (1.0, 1.0)),
    "parquet": Material("parquet", (2.0, 2.0)),
    "tiles": Material("tiles", (2.0, 2.0)),
    "tiles_dark": Material("tiles_dark", (2.0, 2.0)),
    "carpet_red": Material("carpet", (1.5, 1.5), (0.62, 0.22, 0.20)),
    "carpet_blue": Material("carpet", (1.5, 1.5), (0.25, 0.35, 0.60)),
    "carpet_grey": Material("carpet", (1.5, 1.5), (0.55, 0.55, 0.56)),
    "plaster": Material("plaster", (2.0, 2.0)),
    "bricks": Material("bricks", (1.6, 1.6)),
    "ceiling": Material("ceiling", (1.2, 1.2), unlit=True),
    "books": Material("books", (1.0, 2.0)),
    "crate": Material("crate", (1.0, 1.0)),
    "water": Material("water", (4.0, 4.0)),
    "metal": Material("metal", (1.0, 1.0)),
    "car_body": Material("car_body", (4.5, 1.4)),
    "car_glass": Material("car_glass", (1.0, 1.0)),
    "glass": Material(None, unlit=True),  # window panes: coloured by the renderer from the sky
    "emissive": Material(None, unlit=True),  # lamp heads, distant hills: vertex colour at full brightness
    "paint": Material(None),  # plain vertex colour, lit
}
for _style in FACADE_STYLES:
    MATERIALS[f"facade_{_style}"] = Material(f"facade_{_style}", (6.0, 6.4), night_texture=f"facade_{_style}_night")


def material(name: str) -> Material:
    """The material ``name``; ``KeyError`` naming the known materials otherwise."""
    try:
        return MATERIALS[name]
    except KeyError:
        raise KeyError(f"unknown material {name!r}; known: {sorted(MATERIALS)}") from None
