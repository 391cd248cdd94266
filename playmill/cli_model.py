"""The model verbs of ``playmill``: ``train``, ``encode-latents``, ``generate``, ``distill ode-pairs|init|dmd`` and
``eval`` (declared with :func:`playmill.cli.add_verb`). Each resolves its defaults from the pipeline config and
calls the library function the pipeline stage and the tests call (:mod:`playmill.stages`, :mod:`model.latents`,
:mod:`model.sample`, :mod:`model.stream`, :mod:`playmill.evaluation`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from playmill.cli import UsageError, add_no_verify, add_progress, add_sugar, add_verb, existing, load, print_run

TRAIN_EXAMPLES = """\
playmill train --set train.max_steps=500
  playmill train --shards runs/default/shards/default-112x64x17 --out runs/tiny --set train.max_steps=200
  torchrun --standalone --nproc_per_node 2 -m playmill train --set train.parallel=fsdp
                        the same on 2 processes, the model sharded (FSDP2; on the CPU: gloo)
  torchrun --standalone --nproc_per_node 8 -m playmill train --preset mg2-1.3b \\
      --shards runs/big/shards/default --out runs/mg2-base --set train.parallel=fsdp \\
      --set train.vae_checkpoint=ckpt/Wan2.1_VAE.pth \\
      --set train.image_encoder_checkpoint=ckpt/models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth
several nodes, SLURM: model/TRAINING.md ("Launching on several GPUs and nodes"), scripts/train.sbatch"""

GENERATE_EXAMPLES = """\
playmill generate --model base --checkpoint runs/default/models/base --image first.png --actions a.csv -o out.mp4
  playmill generate --model student --checkpoint runs/default/models/student --image first.png --interactive -o me.mp4
actions CSV: one row per video frame; key columns named like the dataset's keys (key_w or w, ...) and d_pitch,
d_yaw in degrees (an episode's actions.csv works as it is). Row i is the input that produced frame i."""

EVAL_EXAMPLES = """\
playmill eval --set eval.steps=10      every trained model of the workdir on the held-out test episodes
  playmill eval --episodes 4 --no-scripts       more test episodes; recorded actions and the controls only
  playmill eval --student Matrix-Game-2.0/base_distilled_model/base_distill.safetensors --vae Wan2.1_VAE.pth \\
      --image-encoder models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth     the released student (GPU)
writes <workdir>/reports/eval.json and eval.html (controllability, fidelity, temporal quality, loops, baselines)."""


def _frames(text: str) -> int:
    """argparse type: a frame count of 1 + 4k."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if n < 1 or n % 4 != 1:
        raise argparse.ArgumentTypeError(f"{n} frames: expected 1 + 4k frames, e.g. 17, 33, 57")
    return n


def _positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: expected an integer >= 1")
    return n


def add_verbs(sub: Any) -> None:
    p = add_verb(sub, "train", help="train the base world model on shards (the train stage alone)", func=cmd_train,
                 description="Flow-matching training of the action-conditioned image-to-video DiT (Matrix-Game "
                             "2.0's base model) with the config's train section; resumes an existing run. Under "
                             "torchrun every process runs this verb: train.parallel picks DDP or FSDP2, rank 0 "
                             "curates a dataset: auto while the others wait, rank 0 alone reports. See "
                             "model/TRAINING.md for the settings and launching on several GPUs and nodes.",
                 example=TRAIN_EXAMPLES)
    add_sugar(p, "--preset", "train.preset", "tiny (CPU, minutes) or mg2-1.3b")
    add_sugar(p, "--workdir", "workdir", "where the run writes")
    p.add_argument("--shards", type=existing("shards folder"),
                   help="shards folder (default: the train shards; dataset auto curates them at the model's clip size)")
    p.add_argument("--out", type=Path, help="run folder (default: <workdir>/models/base)")
    p.add_argument("--no-resume", action="store_true",
                   help="start again from step 0 even when --out holds a run (new checkpoints replace its ones)")
    add_no_verify(p)
    add_progress(p)
    _add_encode_latents(sub)
    _add_generate(sub)
    _add_distill(sub)
    _add_eval(sub)


def _add_encode_latents(sub: Any) -> None:
    p = add_verb(sub, "encode-latents", help="cache VAE latents and image features of a shards folder",
                 func=cmd_encode_latents, config="option",
                 description="Encode every clip of a shards folder once (VAE latents, first-frame latents, "
                             "image-encoder tokens) into side shards, so training skips the VAE. Reruns skip what is "
                             "already encoded with the same inputs. The source shards are not modified.",
                 example="playmill encode-latents runs/default/shards/default --vae runs/default/models/base/vae.safetensors")
    p.add_argument("shards", type=existing("shards folder"), help="a shards folder (with manifest.json)")
    p.add_argument("--vae", type=existing("VAE weights file"), required=True,
                   help="VAE weights: a run's vae.safetensors or Wan2.1_VAE.pth")
    p.add_argument("--image-encoder", type=existing("weights file"),
                   help="image encoder weights (a run's image_encoder.safetensors or the CLIP .pth); without it no "
                        "image features are cached")
    p.add_argument("--out", type=Path, help="output folder (default: <shards>/latents)")
    p.add_argument("--frames", type=_frames, help="frames per clip to encode, 1 + 4k (default: the clips' length)")
    add_sugar(p, "--dtype", "train.latent_dtype", "storage dtype: float16 or float32")
    p.add_argument("--batch-size", type=_positive, default=4, metavar="N", help="clips per VAE batch (default 4)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    add_no_verify(p)
    add_progress(p)


def _add_generate(sub: Any) -> None:
    p = add_verb(sub, "generate", help="generate a video from a first frame and actions", func=cmd_generate,
                 description="Sample a video from a trained model: --model base integrates the bidirectional base "
                             "model with generate.steps Euler steps over the whole clip; --model student streams the "
                             "few-step causal student block by block with a rolling KV cache, writing the video as it "
                             "goes (constant memory for any length).",
                 example=GENERATE_EXAMPLES)
    p.add_argument("--model", choices=["base", "student"], default="base", help="which model (default base)")
    p.add_argument("--checkpoint", type=existing("checkpoint"), required=True,
                   help="a run folder, a checkpoint folder or a weights file (student: also a Matrix-Game 2.0 "
                        "distilled .safetensors)")
    p.add_argument("--image", type=existing("image"), required=True,
                   help="the first frame (PNG/JPEG; resized and centre-cropped)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--actions", type=existing("actions CSV"), help="per-frame actions CSV")
    src.add_argument("--interactive", action="store_true",
                     help="student only: read actions typed at the terminal, one line per block")
    p.add_argument("-o", "--output", type=Path, required=True, help="mp4 to write")
    p.add_argument("--frames", type=_frames, help="video frames, 1 + 4k (default: as many as the actions allow)")
    add_sugar(p, "--steps", "generate.steps", "base: Euler steps")
    add_sugar(p, "--seed", "generate.seed", "seed of the noise")
    _add_mg2_student_args(p)
    p.add_argument("--fps", type=float, help="fps of the mp4 (default: the training data's)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    add_progress(p)


def _add_mg2_student_args(p: argparse.ArgumentParser) -> None:
    """The options that load a Matrix-Game 2.0 distilled checkpoint as the student (``model.stream.load_student``)."""
    p.add_argument("--mode", choices=["universal", "gta_drive", "templerun"],
                   help="student: the action mode of a Matrix-Game 2.0 distilled checkpoint (default: from its shapes)")
    p.add_argument("--vae", type=existing("VAE weights file"), help="student, Matrix-Game 2.0 checkpoint: Wan2.1_VAE.pth")
    p.add_argument("--image-encoder", type=existing("weights file"),
                   help="student, Matrix-Game 2.0 checkpoint: the CLIP ViT-H/14 .pth")
    p.add_argument("--mouse-scale", type=float,
                   help="student, Matrix-Game 2.0 checkpoint: model units per degree of mouse (default 0.1)")


def _add_distill(sub: Any) -> None:
    d = add_verb(sub, "distill", help="distil the base model into a few-step causal student (Self-Forcing)",
                 config=None,
                 description="Matrix-Game 2.0's distillation in three resumable steps: ode-pairs (teacher trajectories "
                             "on real clips), init (student initialised by ODE regression), dmd (DMD self-forcing on "
                             "the student's own rollouts). Settings: the config's distill section; folders under "
                             "<workdir>/models. Each step runs under torchrun too (distill.init.parallel, "
                             "distill.dmd.parallel: ddp or fsdp; ODE pair parts split over the processes).",
                 example="playmill distill ode-pairs && playmill distill init && playmill distill dmd")
    dsub = d.add_subparsers(dest="distill_verb", metavar="STEP", required=True)
    steps = {
        "ode-pairs": ("sample the teacher's ODE trajectories on the shards' first frames and actions",
                      "<workdir>/models/ode_pairs", "playmill distill ode-pairs --set distill.ode_pairs.num_pairs=64\n"
                      "  torchrun --standalone --nproc_per_node 2 -m playmill distill ode-pairs   (parts split over "
                      "2 processes)"),
        "init": ("initialise the causal student by regression onto the ODE endpoints", "<workdir>/models/student_init",
                 "playmill distill init --set distill.init.max_steps=400"),
        "dmd": ("DMD self-forcing: student rollouts, frozen teacher (real score), trained critic (fake score)",
                "<workdir>/models/student", "playmill distill dmd --set distill.dmd.max_steps=200 --out "
                                            "runs/default/models/student-long\n"
                "  torchrun --standalone --nproc_per_node 2 -m playmill distill dmd --set distill.dmd.parallel=fsdp"),
    }
    for name, (what, default_out, example) in steps.items():
        p = add_verb(dsub, name, help=what, description=what[0].upper() + what[1:] + ".", example=example,
                     func=cmd_distill)
        add_sugar(p, "--preset", "distill.preset", "tiny or mg2")
        add_sugar(p, "--workdir", "workdir", "where the run writes")
        p.add_argument("--teacher", type=existing("base model run"), help="the base model run (default <workdir>/models/base)")
        if name in ("ode-pairs", "dmd"):
            p.add_argument("--shards", type=existing("shards folder"), help="shards with the real clips (default: the train shards)")
        if name == "init":
            p.add_argument("--pairs", type=existing("ODE pairs folder"), help="ODE pairs folder (default <workdir>/models/ode_pairs)")
        if name == "dmd":
            p.add_argument("--init", type=existing("student folder"), help="the initialised student (default <workdir>/models/student_init)")
        p.add_argument("--out", type=Path, help=f"output folder (default {default_out})")
        p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
        if name in ("ode-pairs", "dmd"):
            add_no_verify(p)
        add_progress(p)


def _add_eval(sub: Any) -> None:
    p = add_verb(sub, "eval", help="evaluate the trained models on held-out test episodes (the eval stage alone)",
                 func=cmd_eval,
                 description="For each held-out test episode (curate.split), from its first frame, each model generates "
                             "under the recorded actions, GameWorld-style action scripts, shuffled and zero actions and "
                             "camera loops; measured: action controllability (the camera-motion estimator against the "
                             "input actions), PSNR/SSIM against the recording or the sandbox replay, flicker and warp "
                             "error, scene consistency, with baselines (the recording, a frozen first frame). Settings: "
                             "the config's eval section. Writes <workdir>/reports/eval.json and eval.html.",
                 example=EVAL_EXAMPLES)
    add_sugar(p, "--workdir", "workdir", "where the run writes")
    add_sugar(p, "--episodes", "eval.episodes", "test episodes evaluated, at most")
    p.add_argument("--no-scripts", action="store_true", help="skip the action scripts (= --set eval.scripts=false)")
    p.add_argument("--base", type=existing("base model run or checkpoint"),
                   help="a base model run or checkpoint to evaluate instead of <workdir>/models/base")
    p.add_argument("--student", type=existing("student run or checkpoint"),
                   help="a student run or checkpoint (or a Matrix-Game 2.0 distilled .safetensors with --vae and "
                        "--image-encoder) instead of <workdir>/models/student")
    _add_mg2_student_args(p)
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    add_progress(p)


def cmd_train(args: argparse.Namespace) -> int:
    from playmill.stages import run_stage, run_train

    cfg = load(args)
    try:
        report = run_stage(cfg, "train", progress=not args.no_progress, reraise=(UsageError,),
                           run=lambda c, progress: run_train(c, shards=args.shards, out=args.out,
                                                             resume=not args.no_resume, progress=progress))
    finally:
        _end_distributed()
    return _report(report)


def _report(report: Any) -> int:
    """Print the verb's summary (rank 0 alone under torchrun) and return its exit code."""
    from playmill.stages import PipelineRun, is_rank_zero

    run = PipelineRun([report], [])
    return print_run(run) if is_rank_zero() else run.exit_code


def _end_distributed() -> None:
    """Close the process group that the verb opened under torchrun (curating dataset: auto on rank 0 while the
    others wait opens it before training; the training functions leave a group they did not open)."""
    if "torch" in sys.modules:
        from model.parallel import shutdown_distributed

        shutdown_distributed()


def cmd_encode_latents(args: argparse.Namespace) -> int:
    from curation.shards import shard_verification
    from model.latents import encode_latents

    cfg = load(args)
    with shard_verification(cfg.verify_shards):
        out = encode_latents(args.shards, args.vae, args.out, image_encoder=args.image_encoder,
                             num_frames=args.frames, batch_size=args.batch_size, dtype=cfg.train.latent_dtype,
                             device=args.device, progress=not args.no_progress)
    print(f"encode-latents: {out}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    cfg = load(args)
    g = cfg.generate
    if args.model == "base":
        if args.interactive:
            raise UsageError("--interactive streams actions block by block: it needs --model student")
        extra = [f for f, v in (("--mode", args.mode), ("--vae", args.vae), ("--image-encoder", args.image_encoder),
                                ("--mouse-scale", args.mouse_scale)) if v is not None]
        if extra:
            raise UsageError(f"{', '.join(extra)}: for Matrix-Game 2.0 distilled checkpoints, i.e. --model student")
        from model.sample import generate_base

        res = generate_base(args.checkpoint, args.image, args.actions, num_frames=args.frames, steps=g.steps,
                            out_mp4=args.output, seed=g.seed, device=args.device, fps=args.fps,
                            progress=not args.no_progress)
        print(f"generate: {len(res.frames)} frames -> {args.output}")
        return 0
    from model.stream import generate_interactive, generate_student

    kw = dict(num_frames=args.frames, mode=args.mode, seed=g.seed, device=args.device, fps=args.fps,
              vae=args.vae, image_encoder=args.image_encoder, mouse_scale=args.mouse_scale)
    if args.interactive:
        print("type one line per block: w/a/s/d move, i/k/j/l look, empty = idle, q = stop", file=sys.stderr)
        res = generate_interactive(args.checkpoint, args.image, args.output, stdin=sys.stdin, stdout=sys.stderr, **kw)
    else:
        res = generate_student(args.checkpoint, args.image, args.actions, args.output,
                               progress=not args.no_progress, **kw)
    print(f"generate: {res.num_frames} frames in {res.seconds:.1f} s ({res.frames_per_second:.1f} frames/s) "
          f"-> {args.output}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from playmill.stages import _summary, distill_step, run_stage

    cfg = load(args)

    def step(c: Any, progress: bool) -> tuple[Any, Path]:
        return distill_step(c, args.distill_verb, teacher=args.teacher, shards=getattr(args, "shards", None),
                            pairs=getattr(args, "pairs", None), student_init=getattr(args, "init", None),
                            out=args.out, device=args.device, progress=progress)

    def describe(c: Any, result: tuple[Any, Path]) -> tuple:
        res, out = result
        facts = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in _summary(res).items()
                          if not isinstance(v, str) and v is not None and k != "elapsed_s")
        return "done", facts, out, []

    try:
        report = run_stage(cfg, f"distill {args.distill_verb}", progress=not args.no_progress, run=step,
                           describe=describe, reraise=(UsageError,))
    finally:
        _end_distributed()
    return _report(report)


def cmd_eval(args: argparse.Namespace) -> int:
    from playmill.stages import PipelineRun, run_eval_stage, run_stage

    cfg = load(args, ["eval.scripts=false"] if args.no_scripts else [])
    models = dict(base=args.base, student=args.student, vae=args.vae, image_encoder=args.image_encoder, mode=args.mode,
                  mouse_scale=args.mouse_scale, device=args.device)
    report = run_stage(cfg, "eval", progress=not args.no_progress, reraise=(UsageError,),
                       run=lambda c, progress: run_eval_stage(c, progress=progress, **models))
    return print_run(PipelineRun([report], [cfg.reports_dir / "eval.html"] if report.status == "done" else []))
