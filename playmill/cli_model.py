"""The model verbs of the ``playmill`` command line: ``train``, ``encode-latents``, ``generate`` and ``distill``.

Thin, like the rest of the CLI: each verb parses its options, resolves defaults from the pipeline config and
calls the library function the pipeline stage and the tests call (:mod:`model.train`, :mod:`model.latents`,
:mod:`model.sample`, :mod:`model.stream`, :mod:`model.distill`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

TRAIN_EPILOG = """\
examples:
  playmill train                                  the train stage of ./pipeline.yaml (tiny preset, sandbox shards)
  playmill train --preset tiny --shards runs/default/shards/default-112x64x17 --out runs/tiny --set max_steps=200
  torchrun --standalone --nproc_per_node 8 -m playmill train --preset mg2-1.3b \\
      --shards runs/big/shards/default --out runs/mg2-base \\
      --set vae_checkpoint=ckpt/Wan2.1_VAE.pth \\
      --set image_encoder_checkpoint=ckpt/models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth
"""

GENERATE_EPILOG = """\
examples:
  playmill generate --model base --checkpoint runs/default/models/base --image first.png --actions a.csv -o out.mp4
  playmill generate --model student --checkpoint runs/default/models/distill --image first.png --actions a.csv \\
      --frames 153 -o long.mp4
  playmill generate --model student --checkpoint runs/default/models/distill --image first.png --interactive -o me.mp4
actions CSV: one row per video frame; key columns named like the dataset's keys (key_w or w, ...) and d_pitch,
d_yaw in degrees (an episode's actions.csv works as it is). Row i is the input that produced frame i.
"""


DISTILL_EPILOG = """\
examples:
  playmill distill ode-pairs && playmill distill init && playmill distill dmd     the pipeline's distill stage
  playmill distill dmd --set max_steps=200 --out runs/default/models/student-long
  playmill generate --model student --checkpoint runs/default/models/student --image f.png --actions a.csv -o s.mp4
"""


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: value}``, values parsed as YAML (numbers, booleans, lists, null)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected key=value, e.g. --set max_steps=200")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {item!r}: the value is not valid YAML: {exc}") from None
    return out


def _pipeline_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("pipeline", nargs="?", type=Path, default=Path("pipeline.yaml"),
                   help="pipeline config that supplies the defaults (default: ./pipeline.yaml if it exists, else the "
                        "built-in defaults)")


def add_model_verbs(sub: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    """Add ``train``, ``encode-latents``, ``generate`` and ``distill`` to the top-level subparsers."""
    p = sub.add_parser("train", help="train the base world model on shards (the train stage alone)",
                       description="Flow-matching training of the action-conditioned image-to-video DiT "
                                   "(Matrix-Game 2.0's base model) on a shards folder; resumes an existing run. "
                                   "Without options: the train: section of the pipeline config. See "
                                   "model/TRAINING.md for the settings and training at scale (torchrun DDP).",
                       epilog=TRAIN_EPILOG, formatter_class=formatter)
    _pipeline_arg(p)
    p.add_argument("--preset", help="train config preset: tiny (CPU, minutes) or mg2-1.3b (default: the pipeline's "
                                    "train.preset)")
    p.add_argument("--shards", type=Path, help="shards folder (default: the pipeline's train shards; dataset auto "
                                               "curates them at the model's clip size)")
    p.add_argument("--out", type=Path, help="run folder (default: <workdir>/models/base)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a TrainConfig key (repeatable), e.g. --set max_steps=500 --set lr=1e-4")
    p.add_argument("--workdir", type=Path, help="override the config's workdir")
    p.add_argument("--no-resume", action="store_true", help="start again from step 0 even when --out holds a run (new checkpoints replace its ones)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("encode-latents", help="cache VAE latents and image features of a shards folder",
                       description="Encode every clip of a shards folder once (VAE latents, first-frame latents, "
                                   "image-encoder tokens) into side shards, so training skips the VAE. Reruns skip "
                                   "what is already encoded with the same inputs. The source shards are not "
                                   "modified.", formatter_class=formatter)
    p.add_argument("shards", type=Path, help="a shards folder (with manifest.json)")
    p.add_argument("--vae", type=Path, required=True,
                   help="VAE weights: a run's vae.safetensors or Wan2.1_VAE.pth")
    p.add_argument("--image-encoder", type=Path,
                   help="image encoder weights (a run's image_encoder.safetensors or the CLIP .pth); without it "
                        "no image features are cached")
    p.add_argument("--out", type=Path, help="output folder (default: <shards>/latents)")
    p.add_argument("--frames", type=int, help="frames per clip to encode, 1 + 4k (default: the clips' length)")
    p.add_argument("--dtype", choices=["float16", "float32"], default="float16", help="storage dtype")
    p.add_argument("--batch-size", type=int, default=4, help="clips per VAE batch")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_encode_latents)

    p = sub.add_parser("generate", help="generate a video from a first frame and actions",
                       description="Sample a video from a trained model: --model base integrates the bidirectional "
                                   "base model with N Euler steps over the whole clip; --model student streams the "
                                   "few-step causal student block by block with a rolling KV cache, writing the "
                                   "video as it goes (constant memory for any length).",
                       epilog=GENERATE_EPILOG, formatter_class=formatter)
    p.add_argument("--model", choices=["base", "student"], default="base", help="which model (default base)")
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="a run folder, a checkpoint folder or a weights file (student: also a Matrix-Game 2.0 "
                        "distilled .safetensors with --mode)")
    p.add_argument("--image", type=Path, required=True, help="the first frame (PNG/JPEG; resized and centre-cropped)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--actions", type=Path, help="per-frame actions CSV")
    src.add_argument("--interactive", action="store_true",
                     help="student only: read actions typed at the terminal, one line per block")
    p.add_argument("-o", "--output", type=Path, required=True, help="mp4 to write")
    p.add_argument("--frames", type=int, help="video frames, 1 + 4k (default: as many as the actions allow)")
    p.add_argument("--steps", type=int, default=30, help="base: Euler steps (default 30)")
    p.add_argument("--mode", choices=["universal", "gta_drive", "templerun"],
                   help="student: the action mode of a Matrix-Game 2.0 distilled checkpoint (read from its shapes "
                        "when not given)")
    p.add_argument("--vae", type=Path, help="student, Matrix-Game 2.0 checkpoint: Wan2.1_VAE.pth")
    p.add_argument("--image-encoder", type=Path,
                   help="student, Matrix-Game 2.0 checkpoint: the CLIP ViT-H/14 .pth")
    p.add_argument("--mouse-scale", type=float,
                   help="student, Matrix-Game 2.0 checkpoint: model units per degree of mouse (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise")
    p.add_argument("--fps", type=float, help="fps of the mp4 (default: the training data's)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_generate)

    d = sub.add_parser("distill", help="distil the base model into a few-step causal student (Self-Forcing)",
                       description="Matrix-Game 2.0's distillation in three resumable steps: ode-pairs (teacher "
                                   "trajectories on real clips), init (student initialised by ODE regression), dmd "
                                   "(DMD self-forcing on the student's own rollouts). Defaults come from the distill: "
                                   "section of the pipeline config and its folders under <workdir>/models.",
                       epilog=DISTILL_EPILOG, formatter_class=formatter)
    dsub = d.add_subparsers(dest="distill_verb", metavar="STEP", required=True)
    steps = {
        "ode-pairs": ("sample the teacher's ODE trajectories on the shards' first frames and actions",
                      "<workdir>/models/ode_pairs"),
        "init": ("initialise the causal student by regression onto the ODE endpoints", "<workdir>/models/student_init"),
        "dmd": ("DMD self-forcing: student rollouts, frozen teacher (real score), trained critic (fake score)",
                "<workdir>/models/student"),
    }
    for name, (what, default_out) in steps.items():
        p = dsub.add_parser(name, help=what, description=what[0].upper() + what[1:] + ".", formatter_class=formatter)
        _pipeline_arg(p)
        p.add_argument("--preset", help="tiny or mg2 (default: the pipeline's distill.preset)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a key of this step's config (repeatable), e.g. --set max_steps=50")
        p.add_argument("--teacher", type=Path, help="the base model run (default <workdir>/models/base)")
        if name in ("ode-pairs", "dmd"):
            p.add_argument("--shards", type=Path, help="shards with the real clips (default: the train shards)")
        if name == "init":
            p.add_argument("--pairs", type=Path, help="ODE pairs folder (default <workdir>/models/ode_pairs)")
        if name == "dmd":
            p.add_argument("--init", type=Path, help="the initialised student (default <workdir>/models/student_init)")
        p.add_argument("--out", type=Path, help=f"output folder (default {default_out})")
        p.add_argument("--workdir", type=Path, help="override the config's workdir")
        p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")
        p.set_defaults(func=cmd_distill)


def _pipeline(args: argparse.Namespace):
    from playmill.config import PipelineConfig, load_config

    path = getattr(args, "pipeline", None)
    cfg = load_config(path) if path is not None and path.exists() else PipelineConfig()
    if getattr(args, "workdir", None):
        cfg.workdir = args.workdir.resolve()
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    from model.train import get_train_config, train
    from playmill.stages import train_shards

    cfg = _pipeline(args)
    overrides = {**cfg.train.settings, **parse_set(args.set)} if args.preset is None else parse_set(args.set)
    tcfg = get_train_config(args.preset or cfg.train.preset, **overrides)
    if args.shards is None:
        cfg.train.preset, cfg.train.settings = args.preset or cfg.train.preset, overrides
        shards = train_shards(cfg, progress=not args.no_progress)
    else:
        shards = args.shards
    out = args.out or cfg.models_dir / "base"
    res = train(tcfg, shards, out, progress=not args.no_progress, resume=not args.no_resume)
    val = "" if res.val_loss_final is None else f", validation loss {res.val_loss_initial:.4g} -> {res.val_loss_final:.4g}"
    print(f"train: {res.steps} of {tcfg.max_steps} steps, final loss {res.final_loss:.4g}{val}, "
          f"{res.samples_per_s:.1f} samples/s -> {res.checkpoint}")
    return 0


def cmd_encode_latents(args: argparse.Namespace) -> int:
    from model.latents import encode_latents

    if args.batch_size < 1:
        raise ValueError(f"--batch-size: {args.batch_size} is not allowed; expected an integer >= 1")
    out = encode_latents(args.shards, args.vae, args.out, image_encoder=args.image_encoder, num_frames=args.frames,
                         batch_size=args.batch_size, dtype=args.dtype, device=args.device,
                         progress=not args.no_progress)
    print(f"encode-latents: {out}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    if args.model == "base":
        if args.interactive:
            raise ValueError("--interactive streams actions block by block: it needs --model student")
        extra = [f for f, v in (("--mode", args.mode), ("--vae", args.vae), ("--image-encoder", args.image_encoder),
                                ("--mouse-scale", args.mouse_scale)) if v is not None]
        if extra:
            raise ValueError(f"{', '.join(extra)}: for Matrix-Game 2.0 distilled checkpoints, i.e. --model student")
        from model.sample import generate_base

        res = generate_base(args.checkpoint, args.image, args.actions, num_frames=args.frames, steps=args.steps,
                            out_mp4=args.output, seed=args.seed, device=args.device, fps=args.fps,
                            progress=not args.no_progress)
    else:
        from model.stream import generate_interactive, generate_student

        kw = dict(num_frames=args.frames, mode=args.mode, seed=args.seed, device=args.device, fps=args.fps,
                  vae=args.vae, image_encoder=args.image_encoder, mouse_scale=args.mouse_scale)
        if args.interactive:
            print("type one line per block: w/a/s/d move, i/k/j/l look, empty = idle, q = stop", file=sys.stderr)
            res = generate_interactive(args.checkpoint, args.image, args.output, stdin=sys.stdin, stdout=sys.stderr,
                                       **kw)
        else:
            res = generate_student(args.checkpoint, args.image, args.actions, args.output,
                                   progress=not args.no_progress, **kw)
        print(f"generate: {res.num_frames} frames in {res.seconds:.1f} s ({res.frames_per_second:.1f} frames/s) "
              f"-> {args.output}")
        return 0
    print(f"generate: {len(res.frames)} frames -> {args.output}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from playmill.stages import _summary, distill_step

    cfg = _pipeline(args)
    sec = cfg.distill
    part = {"ode-pairs": "ode_pairs", "init": "init", "dmd": "dmd"}[args.distill_verb]
    if args.preset is not None:
        sec.preset, sec.ode_pairs, sec.init, sec.dmd = args.preset, {}, {}, {}
    setattr(sec, part, {**getattr(sec, part), **parse_set(args.set)})
    res, out = distill_step(cfg, args.distill_verb, teacher=args.teacher, shards=getattr(args, "shards", None),
                            pairs=getattr(args, "pairs", None), student_init=getattr(args, "init", None),
                            out=args.out, device=args.device, progress=not args.no_progress)
    facts = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in _summary(res).items()
                      if not isinstance(v, str) and v is not None)
    print(f"distill {args.distill_verb}: {facts} -> {out}")
    return 0
