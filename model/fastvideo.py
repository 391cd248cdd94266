"""Export a shards folder as FastVideo's Matrix-Game 2.0 training Parquet (``pyarrow_schema_matrixgame2``).

FastVideo (fastvideo/dataset/dataloader/schema.py) stores each tensor as three columns ``<name>_bytes`` (raw
bytes), ``<name>_shape`` (list<int64>) and ``<name>_dtype`` (string); its reader ignores ``_dtype`` and decodes
every tensor as float32, so every tensor here is float32. Per clip (one row):

    vae_latent          [16, T_lat, H/8, W/8]  the VAE posterior mean, raw (FastVideo's trainer normalises it)
    clip_feature        [L, D]                 the image encoder's tokens of frame 0 (CLIP ViT-H/14: [257, 1280])
    first_frame_latent  [16, T_lat, H/8, W/8]  VAE.encode([frame 0, 0, ..., 0]), normalised (shift/scale applied)
    mouse_cond          [T, 2]                 (pitch up +, yaw right +) per frame, Matrix-Game units = degrees / 15
    keyboard_cond       [T, K]                 W, S, A, D held (0/1), then zeros to ``keyboard_dim`` columns
    pil_image           empty                  (absent: FastVideo reads empty bytes as a missing tensor)
    id, file_name, caption, media_type ("video"), width, height, num_frames (video frames), duration_sec, fps

The VAE and image encoder are playmill's: the Wan 2.1 VAE and CLIP files when given (FastVideo's own shapes),
otherwise those a playmill base run trained (the tiny ones: the same layout at their sizes). Action rows follow
playmill's convention (row i: the input that produced frame i), as Matrix-Game's per-frame conditions do.

Output: ``OUT/<split>/data_chunk_<n>.parquet`` for each held-out split of the shards (``--split``), small row
groups (FastVideo reads a row by loading its whole row group), nothing else: FastVideo's loader reads every
``.parquet`` under its ``data_path`` (``OUT/train``). Provenance is in each file's Parquet key-value metadata.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

#: FastVideo's key order of the base model's keyboard (KEYBOARD_MAP_4, widened with zero columns).
MG2_KEYS: tuple[str, ...] = ("w", "s", "a", "d")
#: Matrix-Game mouse units per degree (a Matrix-Game maintainer, SkyworkAI/Matrix-Game#16: 1 degree = 1/15).
MG2_MOUSE_PER_DEGREE = 1.0 / 15.0
TENSORS: tuple[str, ...] = ("vae_latent", "clip_feature", "first_frame_latent", "mouse_cond", "keyboard_cond",
                            "pil_image")


def matrixgame2_schema():
    """The Arrow schema FastVideo names ``pyarrow_schema_matrixgame2`` (27 fields, in its order)."""
    import pyarrow as pa

    fields = [pa.field("id", pa.string())]
    for t in TENSORS:
        fields += [pa.field(f"{t}_bytes", pa.binary()), pa.field(f"{t}_shape", pa.list_(pa.int64())),
                   pa.field(f"{t}_dtype", pa.string())]
    fields += [pa.field("file_name", pa.string()), pa.field("caption", pa.string()),
               pa.field("media_type", pa.string()), pa.field("width", pa.int64()), pa.field("height", pa.int64()),
               pa.field("num_frames", pa.int64()), pa.field("duration_sec", pa.float64()),
               pa.field("fps", pa.float64())]
    return pa.schema(fields)


def ode_trajectory_schema():
    """The Arrow schema FastVideo names ``pyarrow_schema_matrixgame2_ode_trajectory`` (25 fields, in its order)."""
    import pyarrow as pa

    fields = [pa.field("id", pa.string())]
    for t in ("mouse_cond", "keyboard_cond", "clip_feature", "first_frame_latent", "pil_image", "trajectory_latents",
              "trajectory_timesteps"):
        fields += [pa.field(f"{t}_bytes", pa.binary()), pa.field(f"{t}_shape", pa.list_(pa.int64())),
                   pa.field(f"{t}_dtype", pa.string())]
    fields += [pa.field("file_name", pa.string()), pa.field("caption", pa.string()), pa.field("media_type", pa.string())]
    return pa.schema(fields)


def tensor_cells(name: str, value: np.ndarray | None) -> dict[str, Any]:
    """``{<name>_bytes, <name>_shape, <name>_dtype}`` of a float32 tensor (None: absent, empty bytes)."""
    if value is None:
        return {f"{name}_bytes": b"", f"{name}_shape": [], f"{name}_dtype": "float32"}
    a = np.ascontiguousarray(value, dtype=np.float32)
    return {f"{name}_bytes": a.tobytes(), f"{name}_shape": list(a.shape), f"{name}_dtype": "float32"}


def mg2_actions(keyboard: np.ndarray, mouse_deg: np.ndarray, keys: Iterable[str], keyboard_dim: int = 4
                ) -> tuple[np.ndarray, np.ndarray]:
    """(keyboard_cond float32 [T, keyboard_dim]: W, S, A, D then zeros; mouse_cond float32 [T, 2] = degrees / 15).

    ``keys``: the dataset's key order; W/S/A/D are found by name (a dataset without one of them gets zeros)."""
    keys = list(keys)
    if keyboard_dim < len(MG2_KEYS):
        raise ValueError(f"keyboard_dim {keyboard_dim}: Matrix-Game's keyboard has at least {len(MG2_KEYS)} columns")
    kb = np.zeros((len(keyboard), keyboard_dim), np.float32)
    for j, k in enumerate(MG2_KEYS):
        if k in keys:
            kb[:, j] = np.asarray(keyboard)[:, keys.index(k)]
    return kb, (np.asarray(mouse_deg, np.float64) * MG2_MOUSE_PER_DEGREE).astype(np.float32)


@dataclass
class FastVideoExport:
    out_dir: Path
    rows: dict[str, int]
    files: list[Path]
    latent_shape: list[int]
    clip_feature_shape: list[int]
    seconds: float


def _encoders(model: str | os.PathLike | None, vae: str | os.PathLike | None,
              image_encoder: str | os.PathLike | None, device: torch.device):
    from .bundle import load_image_encoder, load_vae
    from .configs import get_config

    full = get_config("mg2-1.3b-base")
    if vae is None or image_encoder is None:
        if model is None:
            raise ValueError("give --model (a playmill base run: its vae.safetensors and image_encoder.safetensors) "
                             "or both --vae and --image-encoder")
        run = Path(model)
    v = load_vae(vae, full.vae, device) if vae else load_vae(run / "vae.safetensors", device=device)
    e = (load_image_encoder(image_encoder, full.image_encoder, device) if image_encoder
         else load_image_encoder(run / "image_encoder.safetensors", device=device))
    return v.eval(), e.eval()


class _StagedChunks:
    """Rows written as ``<sub>/data_chunk_NNNNN.parquet`` files of ``rows_per_file`` rows (one row per row group:
    FastVideo reads a row by loading its row group; zstd) into a staging folder beside ``out_dir`` that replaces
    ``out_dir`` whole on :meth:`commit` (a failed export leaves nothing half-written; the staging folder is removed
    on leaving the ``with`` block). ``rows``: rows per sub-folder; ``files``: the final paths; ``shapes``: the
    first shape of each tensor written."""

    def __init__(self, out_dir: Path, schema: Any, rows_per_file: int) -> None:
        self.out_dir, self.schema, self.rows_per_file = out_dir, schema, rows_per_file
        self.tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.rows: dict[str, int] = {}
        self.files: list[Path] = []
        self.shapes: dict[str, list[int]] = {}
        self._buf: list[dict[str, Any]] = []
        self._sub = ""

    def __enter__(self) -> "_StagedChunks":
        return self

    def __exit__(self, *exc: Any) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def begin(self, sub: str = "") -> None:
        """Write the next rows into the sub-folder ``sub`` ("" : ``out_dir`` itself)."""
        self.flush()
        self._sub = sub
        (self.tmp / sub).mkdir(parents=True)

    def add(self, cells: dict[str, Any], tensors: Iterable[tuple[str, np.ndarray | None]]) -> None:
        """One row: the plain ``cells`` and each tensor as its three cells (:func:`tensor_cells`)."""
        for name, val in tensors:
            cells.update(tensor_cells(name, val))
            if val is not None:
                self.shapes.setdefault(name, list(np.shape(val)))
        self._buf.append(cells)
        self.rows[self._sub] = self.rows.get(self._sub, 0) + 1
        if len(self._buf) >= self.rows_per_file:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._buf:
            n = len([f for f in self.files if f.parent == self.out_dir / self._sub])
            path = self.tmp / self._sub / f"data_chunk_{n:05d}.parquet"
            pq.write_table(pa.Table.from_pylist(self._buf, schema=self.schema), path, row_group_size=1,
                           compression="zstd")
            self.files.append(self.out_dir / self._sub / path.name)
            self._buf.clear()

    def commit(self) -> None:
        """Flush, then replace ``out_dir`` with the staged folder."""
        self.flush()
        if self.out_dir.exists():
            shutil.rmtree(self.out_dir)
        os.replace(self.tmp, self.out_dir)


def _provenance(schema: Any, keyboard_dim: int, **fields: Any) -> Any:
    """``schema`` with playmill's provenance (``fields``, the action layout) in its key-value metadata."""
    return schema.with_metadata({"playmill": json.dumps({
        **fields, "keyboard": list(MG2_KEYS) + ["zero"] * (keyboard_dim - 4), "mouse": "pitch, yaw; degrees / 15"})})


@torch.no_grad()
def _mg2_row(row: dict[str, Any], frame_codec: str, fps: float, keys: list[str], keyboard_dim: int, caption: str,
             vae: Any, image_encoder: Any, device: torch.device, streaming: bool
             ) -> tuple[dict[str, Any], list[tuple[str, np.ndarray | None]]]:
    """One clip of the shards as an MG2 row: (plain cells, tensors) (module doc)."""
    from curation.reader import decode_clip

    from .latents import encode_condition, frames_to_video

    media = row["video"] if frame_codec == "h264" else row["frames"]
    n = int(row["num_frames"])
    frames = torch.from_numpy(decode_clip(media, frame_codec, n, channels_first=True))
    t = 1 + 4 * ((n - 1) // 4)  # the VAE's 1 + 4k frames
    clip = frames[None, :t].to(device)
    mu, _ = vae.encode_moments(frames_to_video(clip), streaming=streaming)
    cond, tokens = encode_condition(vae, image_encoder, clip[:, 0], t, streaming=streaming)
    kb, mouse = mg2_actions(np.asarray(row["keyboard"])[:t], np.asarray(row["mouse"])[:t], keys, keyboard_dim)
    cells = {"id": row["clip_id"], "file_name": f"{row['clip_id']}.mp4", "caption": caption,
             "media_type": "video", "width": int(row["width"]), "height": int(row["height"]),
             "num_frames": t, "duration_sec": t / fps, "fps": fps}
    return cells, [("vae_latent", mu[0].float().cpu().numpy()), ("clip_feature", tokens[0].float().cpu().numpy()),
                   ("first_frame_latent", cond[0].float().cpu().numpy()), ("mouse_cond", mouse),
                   ("keyboard_cond", kb), ("pil_image", None)]


@torch.no_grad()
def export_fastvideo(shards_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                     model: str | os.PathLike | None = None, vae: str | os.PathLike | None = None,
                     image_encoder: str | os.PathLike | None = None, splits: Iterable[str] | None = None,
                     keyboard_dim: int = 4, rows_per_file: int = 4, caption: str = "",
                     device: str | torch.device = "cpu", streaming: bool = False, overwrite: bool = False,
                     progress: bool = True) -> FastVideoExport:
    """Write FastVideo's MG2 Parquet of ``shards_dir`` into ``out_dir/<split>/`` (module doc), atomically.

    ``splits``: the held-out splits to export (None: every split the shards have). ``keyboard_dim``: 4
    (Matrix-Game 2.0's distilled models, FastVideo's default) or 6 (``Matrix-Game-2.0-Base-Diffusers``: extra
    columns are zero; FastVideo's new trainer accepts wider arrays whose extra columns are zero). ``streaming``:
    the VAE encodes chunk by chunk (bounded memory for the full-size VAE at 352x640) instead of in one causal pass
    (2x faster on the tiny VAE).
    """
    import time

    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    from curation.card import shard_splits
    from curation.shards import read_manifest

    t0 = time.perf_counter()
    shards_dir, out_dir = Path(shards_dir), Path(out_dir)
    m = read_manifest(shards_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists; choose a new folder or pass overwrite")
    dev = torch.device(device)
    v, e = _encoders(model, vae, image_encoder, dev)
    keys = list(m["action_space"]["keys"])
    by_split = shard_splits(m)
    want = list(by_split) if splits is None else [s for s in splits]
    missing = [s for s in want if s not in by_split]
    if missing:
        raise ValueError(f"{shards_dir}: no clips in split(s) {missing}; it has {list(by_split)}")
    schema = _provenance(matrixgame2_schema(), keyboard_dim, source=os.fspath(shards_dir.resolve()),
                         manifest_sha256=m.get("inputs_sha256"), vae=os.fspath(vae or Path(model) / "vae.safetensors"),
                         image_encoder=os.fspath(image_encoder or Path(model) / "image_encoder.safetensors"))
    total = sum(int(s["rows"]) for s in m["shards"] if (s.get("split") or "train") in want)
    bar = tqdm(total=total, desc="export fastvideo", unit="clip", disable=not progress)
    with _StagedChunks(out_dir, schema, rows_per_file) as chunks:
        for split in want:
            chunks.begin(split)
            for f in by_split[split]:
                pf = pq.ParquetFile(shards_dir / f)
                for g in range(pf.num_row_groups):
                    for row in pf.read_row_group(g).to_pylist():
                        chunks.add(*_mg2_row(row, m["frame_codec"], float(m["fps"]), keys, keyboard_dim, caption,
                                             v, e, dev, streaming))
                        bar.update(1)
        bar.close()
        chunks.commit()
    return FastVideoExport(out_dir, chunks.rows, chunks.files, chunks.shapes.get("vae_latent", []),
                           chunks.shapes.get("clip_feature", []), time.perf_counter() - t0)


def _ode_row(row: dict[str, Any], model_keys: list[str], mouse_scale: float | None, timesteps: np.ndarray,
             keyboard_dim: int, caption: str) -> tuple[dict[str, Any], list[tuple[str, np.ndarray | None]]]:
    """One ODE pair as an ODE-trajectory row: (plain cells, tensors); actions back in Matrix-Game units."""
    from .latents import decode_cell

    arr = {k: decode_cell(row, k) for k in ("ode_latents", "first_frame_latent", "clip_feature", "keyboard")}
    kb_model = arr["keyboard"]
    mouse_deg = None
    if row.get("mouse_bytes"):
        mouse_deg = decode_cell(row, "mouse").astype(np.float64) / float(mouse_scale or 1.0)
    t = kb_model.shape[0]
    kb, mouse = mg2_actions(kb_model, mouse_deg if mouse_deg is not None else np.zeros((t, 2)),
                            model_keys or list(MG2_KEYS)[:kb_model.shape[1]], keyboard_dim)
    cells: dict[str, Any] = {"id": f"{row['clip_id']}-pair{row['pair_id']}",
                             "file_name": f"{row['clip_id']}.mp4", "caption": caption, "media_type": "video"}
    return cells, [("mouse_cond", mouse if mouse_deg is not None else None), ("keyboard_cond", kb),
                   ("clip_feature", arr["clip_feature"]), ("first_frame_latent", arr["first_frame_latent"]),
                   ("pil_image", None), ("trajectory_latents", arr["ode_latents"]),
                   ("trajectory_timesteps", timesteps)]


def export_fastvideo_ode(pairs_dir: str | os.PathLike, out_dir: str | os.PathLike, *, keyboard_dim: int = 4,
                         rows_per_file: int = 4, caption: str = "", overwrite: bool = False) -> FastVideoExport:
    """Write playmill's ODE pairs (``playmill distill ode-pairs``) as FastVideo's ODE-trajectory Parquet
    (``pyarrow_schema_matrixgame2_ode_trajectory``, what ``matrixgame2_ode_causal_pipeline.py`` trains on) into
    ``out_dir`` (its own data_path: another schema than the MG2 rows).

    Per pair: ``trajectory_latents`` [S, 16, F, h, w] = the teacher's states at the student's noise levels then the
    clean endpoint; ``trajectory_timesteps`` [S] = 1000 x those noise levels (FastVideo's timestep scale);
    ``first_frame_latent``, ``clip_feature`` as stored; actions back in Matrix-Game units: the pairs hold the
    teacher's model-space actions, so the mouse is divided by the teacher's ``mouse_scale`` (model units per
    degree) and then by 15, and the keyboard's W, S, A, D columns are found by the teacher's key names.
    """
    import time

    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    pairs_dir, out_dir = Path(pairs_dir), Path(out_dir)
    try:
        man = json.loads((pairs_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{pairs_dir}: not an ODE pairs folder (manifest.json: {e})") from None
    if man.get("schema") != "playmill.ode_pairs/1":
        raise ValueError(f"{pairs_dir}/manifest.json: schema is {man.get('schema')!r}, expected 'playmill.ode_pairs/1'")
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists; choose a new folder or pass overwrite")
    cond = man["teacher_run"]["conditions"]
    model_keys = list((cond.get("keyboard_map") or {}).keys())
    timesteps = np.asarray(man["sigmas"], np.float32) * 1000.0
    schema = _provenance(ode_trajectory_schema(), keyboard_dim, source=os.fspath(pairs_dir.resolve()),
                         teacher=man.get("teacher"), sigmas=man["sigmas"])
    with _StagedChunks(out_dir, schema, rows_per_file) as chunks:
        chunks.begin()
        for part in man["parts"]:
            for row in pq.read_table(pairs_dir / part["file"]).to_pylist():
                chunks.add(*_ode_row(row, model_keys, cond.get("mouse_scale"), timesteps, keyboard_dim, caption))
        chunks.commit()
    return FastVideoExport(out_dir, {"ode_trajectory": chunks.rows.get("", 0)}, chunks.files,
                           chunks.shapes.get("trajectory_latents", []), chunks.shapes.get("clip_feature", []),
                           time.perf_counter() - t0)


__all__ = ["FastVideoExport", "export_fastvideo_ode", "ode_trajectory_schema", "MG2_KEYS", "MG2_MOUSE_PER_DEGREE", "export_fastvideo", "matrixgame2_schema",
           "mg2_actions", "tensor_cells"]
