"""FastVideo export: the written schema equals FastVideo's published pyarrow_schema_matrixgame2 field by field, and
the rows read back the way FastVideo's reader reads them (every tensor as float32) into what playmill's VAE, image
encoder and action conventions give."""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from curation.reader import ShardDataset
from curation.shards import read_manifest
from model.bundle import load_image_encoder, load_vae
from model.fastvideo import MG2_MOUSE_PER_DEGREE, export_fastvideo, matrixgame2_schema, mg2_actions
from model.latents import encode_condition, frames_to_video

PUBLISHED = json.loads((Path(__file__).parent / "fixtures" / "fastvideo_pyarrow_schema_matrixgame2.json").read_text())
TYPES = {"string": pa.string(), "binary": pa.binary(), "list<item: int64>": pa.list_(pa.int64()), "int64": pa.int64(),
         "double": pa.float64()}


def fastvideo_read(row: dict, name: str) -> np.ndarray | None:
    """What fastvideo/dataset/utils.py collate_rows_from_parquet_schema does with a tensor: float32 bytes,
    reshaped; empty bytes are a missing tensor."""
    b = row[f"{name}_bytes"]
    if not b:
        return None
    return np.frombuffer(b, dtype=np.float32).reshape(row[f"{name}_shape"])


@pytest.fixture(scope="module")
def exported(trained_run, synthetic_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("fastvideo") / "out"
    res = export_fastvideo(synthetic_shards, out, model=trained_run.out_dir, keyboard_dim=6, rows_per_file=3,
                           progress=False)
    return res


def test_schema_is_the_published_one_field_by_field(exported):
    mine = matrixgame2_schema()
    assert [[f.name, str(f.type)] for f in mine] == PUBLISHED["fields"]
    for path in exported.files:
        written = pq.read_schema(path)
        assert len(written) == 27
        for f, (name, typ) in zip(written, PUBLISHED["fields"]):
            # Parquet names a list's child "element" where Arrow says "item": the same type (pyarrow's equality)
            assert f.name == name and f.type == TYPES[typ], (f, name, typ)
        assert written.equals(mine)  # FastVideo's own check, pq.read_schema(f).equals(schema) (metadata aside)


def test_only_training_parquet_in_out_and_small_row_groups(exported):
    out = exported.out_dir
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert files and all(p.suffix == ".parquet" and p.parent.parent == out for p in files)
    assert sorted(files) == sorted(exported.files)
    for p in files:
        md = pq.ParquetFile(p).metadata
        assert md.num_rows <= 3 and all(md.row_group(i).num_rows == 1 for i in range(md.num_row_groups))


def test_rows_read_back_as_fastvideo_reads_them(exported, trained_run, synthetic_shards):
    vae = load_vae(trained_run.out_dir / "vae.safetensors")
    enc = load_image_encoder(trained_run.out_dir / "image_encoder.safetensors")
    ds = ShardDataset(synthetic_shards)
    keys = list(read_manifest(synthetic_shards)["action_space"]["keys"])
    rows = [r for p in sorted(exported.files) for r in pq.read_table(p).to_pylist()]
    assert len(rows) == len(ds) == sum(exported.rows.values())
    by_id = {r["id"]: r for r in rows}
    for i in (0, len(ds) - 1):
        item = ds[i]
        r = by_id[item["clip_id"]]
        t = item["frames"].shape[0]
        assert all(r[f"{n}_dtype"] == "float32" for n in ("vae_latent", "clip_feature", "first_frame_latent",
                                                          "mouse_cond", "keyboard_cond"))
        clip = item["frames"][None]
        with torch.no_grad():
            mu, _ = vae.encode_moments(frames_to_video(clip), streaming=False)
            cond, tokens = encode_condition(vae, enc, clip[:, 0], t, streaming=False)
        lat = fastvideo_read(r, "vae_latent")
        assert lat.shape == (16, 1 + (t - 1) // 4, item["frames"].shape[2] // 8, item["frames"].shape[3] // 8)
        np.testing.assert_allclose(lat, mu[0].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(fastvideo_read(r, "first_frame_latent"), cond[0].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(fastvideo_read(r, "clip_feature"), tokens[0].numpy(), rtol=1e-5, atol=1e-5)
        kb = fastvideo_read(r, "keyboard_cond")
        assert kb.shape == (t, 6) and not kb[:, 4:].any()  # W, S, A, D then the base model's zero columns
        for j, k in enumerate("wsad"):
            np.testing.assert_array_equal(kb[:, j], item["keyboard"][:, keys.index(k)].numpy())
        np.testing.assert_allclose(fastvideo_read(r, "mouse_cond"), item["mouse"].numpy() / 15.0, rtol=1e-6)
        assert fastvideo_read(r, "pil_image") is None
        assert (r["media_type"], r["num_frames"], r["width"], r["height"]) == ("video", t, 112, 64)
        assert r["duration_sec"] == pytest.approx(t / r["fps"])


def test_action_units_and_key_order():
    keys = ["a", "d", "w", "s", "space"]
    kb = np.array([[1, 0, 0, 0, 1], [0, 1, 1, 0, 0]], np.uint8)
    k4, m = mg2_actions(kb, np.array([[15.0, -30.0], [1.5, 0.0]]), keys)
    np.testing.assert_array_equal(k4, [[0, 0, 1, 0], [1, 0, 0, 1]])  # columns W, S, A, D
    np.testing.assert_allclose(m, [[1.0, -2.0], [0.1, 0.0]])  # 1.5 deg/frame = Matrix-Game's 0.1
    assert MG2_MOUSE_PER_DEGREE == pytest.approx(1 / 15)
    with pytest.raises(ValueError, match="at least 4"):
        mg2_actions(kb, np.zeros((2, 2)), keys, keyboard_dim=2)


def test_splits_and_existing_folder(exported, synthetic_shards, trained_run):
    assert set(exported.rows) == {"train"}
    with pytest.raises(FileExistsError):
        export_fastvideo(synthetic_shards, exported.out_dir, model=trained_run.out_dir, progress=False)
    with pytest.raises(ValueError, match="no clips in split"):
        export_fastvideo(synthetic_shards, exported.out_dir.parent / "x", model=trained_run.out_dir, splits=["test"],
                         progress=False)


PUBLISHED_ODE = ["id"] + [f"{t}_{k}" for t in ("mouse_cond", "keyboard_cond", "clip_feature", "first_frame_latent",
                                                "pil_image", "trajectory_latents", "trajectory_timesteps")
                          for k in ("bytes", "shape", "dtype")] + ["file_name", "caption", "media_type"]


def test_ode_trajectory_variant_from_playmill_ode_pairs(trained_run, synthetic_shards, tmp_path):
    """pyarrow_schema_matrixgame2_ode_trajectory (fastvideo/dataset/dataloader/schema.py, 25 fields): the teacher's
    states at the student's levels [S, C, T, H, W], timesteps = 1000 sigma, actions back in Matrix-Game units."""
    from model.distill.ode_pairs import get_ode_pairs_config, make_ode_pairs
    from model.fastvideo import export_fastvideo_ode, ode_trajectory_schema
    from model.latents import decode_array

    pairs = make_ode_pairs(get_ode_pairs_config("tiny", num_pairs=3, teacher_steps=4, pairs_per_part=2),
                           trained_run.out_dir, synthetic_shards, tmp_path / "pairs", progress=False)
    res = export_fastvideo_ode(pairs.out_dir, tmp_path / "ode", rows_per_file=2)
    assert [f.name for f in ode_trajectory_schema()] == PUBLISHED_ODE
    rows = [r for p in res.files for r in pq.read_table(p).to_pylist()]
    assert len(rows) == 3 and all(pq.read_schema(p).equals(ode_trajectory_schema()) for p in res.files)
    man = json.loads((pairs.out_dir / "manifest.json").read_text())
    src = pq.read_table(pairs.out_dir / man["parts"][0]["file"]).to_pylist()[0]
    r = rows[0]
    traj = fastvideo_read(r, "trajectory_latents")
    np.testing.assert_array_equal(traj, decode_array(src["ode_latents_bytes"], src["ode_latents_shape"],
                                                     src["ode_latents_dtype"]))
    np.testing.assert_allclose(fastvideo_read(r, "trajectory_timesteps"), np.asarray(man["sigmas"]) * 1000, rtol=1e-6)
    scale = man["teacher_run"]["conditions"]["mouse_scale"]
    mouse_model = decode_array(src["mouse_bytes"], src["mouse_shape"], src["mouse_dtype"])
    np.testing.assert_allclose(fastvideo_read(r, "mouse_cond"), mouse_model / scale / 15.0, rtol=1e-5)
    assert fastvideo_read(r, "keyboard_cond").shape == (mouse_model.shape[0], 4)
