"""The export verbs of ``playmill``: ``export fastvideo`` and ``export lerobot`` (declared with
:func:`playmill.cli.add_verb`; their arguments are data, so the pipeline config is ``--config``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from playmill.cli import UsageError, add_progress, add_verb, load


def add_verbs(sub: Any) -> None:
    ex = add_verb(sub, "export", help="write a shards folder in another project's training format", config=None,
                  description="Hand curated shards to other trainers: FastVideo's Matrix-Game 2.0 Parquet (latents "
                              "and image features computed here) or a LeRobot v3 dataset. The shards folder itself "
                              "opens with Hugging Face datasets as it is (load_dataset(SHARDS): its README.md is a "
                              "dataset card).",
                  example="playmill export lerobot runs/default/shards/default out/lerobot")
    esub = ex.add_subparsers(dest="format", metavar="FORMAT", required=True)
    p = add_verb(esub, "fastvideo", help="FastVideo's Matrix-Game 2.0 training Parquet (pyarrow_schema_matrixgame2)",
                 func=cmd_export_fastvideo, config="option",
                 description="Encode every clip with playmill's VAE and image encoder (the Wan 2.1 VAE and CLIP files "
                             "with --vae/--image-encoder, else those of a base run, --model) and write FastVideo's "
                             "MG2 Parquet into OUT/<split>/ (every tensor float32; keyboard W, S, A, D; mouse pitch, "
                             "yaw in Matrix-Game units = degrees / 15). Point FastVideo's data_path at OUT/train. "
                             "Without SHARDS: the config's <workdir>/shards/<curate.dataset>; without --model: "
                             "<workdir>/models/base.",
                 example="playmill export fastvideo runs/default/shards/default out/fastvideo --model runs/default/models/base")
    p.add_argument("shards", nargs="?", type=Path, help="a shards folder (with manifest.json)")
    p.add_argument("out", type=Path, nargs="?", help="the folder to write (must not exist unless --overwrite)")
    p.add_argument("--model", type=Path, help="a playmill base run: its vae.safetensors and image_encoder.safetensors")
    p.add_argument("--vae", type=Path, help="Wan 2.1 VAE weights (Wan2.1_VAE.pth)")
    p.add_argument("--image-encoder", type=Path, help="CLIP ViT-H/14 weights (models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth)")
    p.add_argument("--split", action="append", dest="splits", metavar="SPLIT",
                   help="export this held-out split (train, val, test; repeatable; default: every split)")
    p.add_argument("--keyboard-dim", type=int, default=4, choices=(4, 6),
                   help="keyboard columns: 4 (W, S, A, D: the distilled models) or 6 (Matrix-Game-2.0-Base: 2 zero columns)")
    p.add_argument("--rows-per-file", type=int, default=4, help="clips per Parquet file (one row group each)")
    p.add_argument("--device", default="cpu", help="torch device of the encoders (cuda for the full-size ones)")
    p.add_argument("--streaming", action="store_true",
                   help="encode chunk by chunk: bounded memory for the full-size Wan VAE at 352x640 (slower)")
    p.add_argument("--ode-pairs", type=Path, metavar="DIR",
                   help="also write playmill's ODE pairs (playmill distill ode-pairs) as FastVideo's ODE-trajectory "
                        "Parquet into OUT/ode_trajectory (FastVideo's matrixgame2 ODE causal pipeline)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_progress(p)

    p = add_verb(esub, "lerobot", help="a LeRobot v3.0 dataset (LeRobotDataset(repo_id, root=OUT))",
                 func=cmd_export_lerobot, config="option",
                 description="Write a LeRobot v3.0 dataset: one episode per clip, the video as the video feature "
                             "observation.images.rgb (H.264), keys + mouse as action, the camera pose as "
                             "observation.state, stats, tasks from the scenes, splits from the held-out split. Load it "
                             "with lerobot: LeRobotDataset('playmill/<name>', root=OUT). Without SHARDS: the config's "
                             "<workdir>/shards/<curate.dataset>.",
                 example="playmill export lerobot runs/default/shards/default out/lerobot")
    p.add_argument("shards", nargs="?", type=Path, help="a shards folder (with manifest.json)")
    p.add_argument("out", type=Path, nargs="?", help="the folder to write (must not exist unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_progress(p)


def _paths(args: argparse.Namespace, what: str) -> tuple[Path, Path]:
    from curation.shards import read_manifest

    if args.out is None and args.shards is not None:  # one path: it is OUT, the shards come from the config
        args.shards, args.out = None, args.shards
    if args.out is None:
        raise UsageError(f"give OUT, the folder to write the {what} export to")
    shards = args.shards or load(args).shards_dir
    if not shards.is_dir():  # a path that does not exist: exit 2
        raise UsageError(f"{shards}: no such shards folder")
    read_manifest(shards)  # unusable shards: ShardsError (exit 1), before anything is written
    if args.out.exists() and not args.overwrite:
        raise UsageError(f"{args.out} exists; choose a new folder or pass --overwrite")
    return shards, args.out


def cmd_export_fastvideo(args: argparse.Namespace) -> int:
    from model.fastvideo import export_fastvideo

    shards, out = _paths(args, "FastVideo")
    model = args.model
    if model is None and (args.vae is None or args.image_encoder is None):
        model = load(args).workdir / "models" / "base"
    if model is not None and not ((model / "vae.safetensors").is_file() or args.vae):
        raise UsageError(f"{model} has no vae.safetensors: give --model <a base run> or --vae and --image-encoder")
    res = export_fastvideo(shards, out, model=model, vae=args.vae, image_encoder=args.image_encoder,
                           splits=args.splits, keyboard_dim=args.keyboard_dim, rows_per_file=args.rows_per_file,
                           device=args.device, streaming=args.streaming, overwrite=args.overwrite, progress=not args.no_progress)
    if args.ode_pairs is not None:
        from model.fastvideo import export_fastvideo_ode

        ode = export_fastvideo_ode(args.ode_pairs, out / "ode_trajectory", keyboard_dim=args.keyboard_dim,
                                   rows_per_file=args.rows_per_file)
        print(f"export fastvideo: {ode.rows['ode_trajectory']} ODE trajectories, trajectory_latents "
              f"{ode.latent_shape} -> {ode.out_dir}")
    rows = ", ".join(f"{s}: {n}" for s, n in res.rows.items())
    print(f"export fastvideo: {sum(res.rows.values())} clip(s) ({rows}) in {len(res.files)} file(s) -> {out} "
          f"({res.seconds:.1f}s)")
    print(f"  vae_latent {res.latent_shape}, clip_feature {res.clip_feature_shape}, keyboard {args.keyboard_dim} wide")
    print(f"  FastVideo: --training.data.data_path {out / 'train'} "
          f"--training.data.num_frames {res.latent_shape and (res.latent_shape[1] - 1) * 4 + 1} "
          f"--training.data.num_latent_t {res.latent_shape[1] if res.latent_shape else '?'}")
    return 0


def cmd_export_lerobot(args: argparse.Namespace) -> int:
    from curation.lerobot import export_lerobot

    shards, out = _paths(args, "LeRobot")
    res = export_lerobot(shards, out, overwrite=args.overwrite, progress=not args.no_progress)
    print(f"export lerobot: {res.episodes} episode(s), {res.frames} frames, tasks {res.tasks}, splits {res.splits} "
          f"-> {out} ({res.seconds:.1f}s)")
    print(f"  from lerobot.datasets.lerobot_dataset import LeRobotDataset; "
          f"ds = LeRobotDataset('playmill/{out.name}', root='{out}')")
    return 0
