"""The ``playmill`` command line. Thin: it parses, validates and calls library functions.

Exit codes: 0 success; 1 the work ran but something failed (invalid episodes, failed episodes);
2 bad usage or a bad config (nothing was run).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from playmill import __version__

EPILOG = """\
examples:
  playmill run pipeline.yaml                 run every stage of the pipeline (sandbox, no game needed)
  playmill collect --episodes 2 --frames 100 record a few sandbox episodes with the default config
  playmill validate runs/default/episodes    check episodes against the playmill.episode/1 format
  playmill curate                            episodes -> Parquet shards (the curate stage alone)
  playmill inspect runs/default/shards/default --verify
  playmill import sekai SEKAI_DIR --out runs/default/episodes
  playmill sandbox preview --scene city --seed 3 -o city.png
  playmill train                             train the base world model on the shards (tiny preset on CPU)
  playmill generate --model base --checkpoint runs/default/models/base --image f.png --actions a.csv -o out.mp4
"""


def _add_config_arg(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("config", nargs=None if required else "?", type=Path,
                   default=None if required else Path("pipeline.yaml"),
                   help="pipeline config (YAML)" + ("" if required else "; default: ./pipeline.yaml if it "
                                                    "exists, else the built-in defaults"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="playmill",
        description="playmill: action-annotated gameplay video for interactive world models. Collect episodes "
                    "from the built-in sandbox (or Unreal / GTA V), validate them, and run the pipeline of "
                    "pipeline.yaml.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"playmill {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = sub.add_parser("run", help="run the stages of a pipeline.yaml in order",
                       description="Validate the config, then run the stages it lists in pipeline order (rl -> "
                                   "collect -> curate -> train -> distill -> generate). Resumable: a rerun skips "
                                   "finished work.")
    _add_config_arg(p, required=True)
    p.add_argument("--stages", help="comma-separated stages to run instead of the config's, e.g. collect,curate or "
                                    "train,generate")
    p.add_argument("--workdir", type=Path, help="override the config's workdir")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("collect", help="record episodes (the collect stage alone)",
                       description="Record episodes into <workdir>/episodes with the config's collect section; "
                                   "options override it. Episode ids are deterministic: a rerun skips "
                                   "finished episodes and completes the rest.")
    _add_config_arg(p, required=False)
    p.add_argument("--workdir", type=Path, help="override the config's workdir")
    p.add_argument("--scenes", help="comma-separated scene families: city, indoor, park")
    p.add_argument("--episodes", type=int, help="episodes per scene")
    p.add_argument("--frames", type=int, help="frames per episode")
    p.add_argument("--workers", type=int, help="parallel worker processes")
    p.add_argument("--width", type=int, help="video width in pixels (even)")
    p.add_argument("--height", type=int, help="video height in pixels (even)")
    p.add_argument("--fps", type=float, help="frames per second")
    p.add_argument("--seed", type=int, help="base seed of the run")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("curate", help="curate episodes into Parquet shards (the curate stage alone)",
                       description="Run the curate stage of the config: redundant frames, velocity validation, "
                                   "resampling, resize/crop, 57-frame clips -> <workdir>/shards/<dataset>/ with "
                                   "manifest.json, rejects.parquet and report.html. Resumable.")
    _add_config_arg(p, required=False)
    p.add_argument("--workdir", type=Path, help="override the config's workdir")
    p.add_argument("--engine", choices=["local", "ray"], help="override curate.engine")
    p.add_argument("--workers", type=int, help="override curate.workers")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_curate)

    p = sub.add_parser("inspect", help="summarise a shards folder; --verify checks it",
                       description="Print a summary of a shards folder (clips, hours per source, rejects by "
                                   "reason, action statistics) and write report.html with plots and preview strips.")
    p.add_argument("shards", type=Path, help="a shards folder (with manifest.json)")
    p.add_argument("--verify", action="store_true", help="check every shard's sha256, size, rows and schema "
                                                         "against the manifest; exit 1 on any problem")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.set_defaults(func=cmd_inspect)

    imp = sub.add_parser("import", help="bring existing recordings in as episodes",
                         description="Convert recordings from other sources into playmill episodes.")
    isub = imp.add_subparsers(dest="import_verb", metavar="SOURCE", required=True)
    p = isub.add_parser("sekai", help="Sekai videos + camera extrinsics (.npz)",
                        description="Import every *.mp4 under SRC with its <stem>.npz camera file (key 'extrinsic', "
                                    "OpenCV axes) as a 'sekai' episode: keys from camera translation, mouse from "
                                    "relative rotation.")
    p.add_argument("src", type=Path, help="folder of Sekai clips")
    p.add_argument("--out", type=Path, default=Path("runs/default/episodes"), help="episodes folder to write")
    p.add_argument("--config", type=Path, help="YAML with Sekai import settings (scale_cm, move_threshold, "
                                               "rotation_deadzone_deg, camera_dir, keys, workers, ...)")
    p.set_defaults(func=cmd_import_sekai)
    p = isub.add_parser("generic", help="one mp4 + an actions CSV with a column mapping",
                        description="Import one video and its per-frame actions CSV as a 'generic' episode.")
    p.add_argument("mp4", type=Path, help="the video")
    p.add_argument("csv", type=Path, help="actions CSV, one row per video frame")
    p.add_argument("--mapping", type=Path, required=True, help="YAML column mapping (keys, d_pitch, d_yaw, "
                                                               "mouse_scale_deg, position/rotation columns, ...)")
    p.add_argument("--out", type=Path, default=Path("runs/default/episodes"), help="episodes folder to write")
    p.set_defaults(func=cmd_import_generic)

    from gta_bridge.importer import add_arguments as add_gta_arguments
    from unreal_bridge.ue_import import add_arguments as add_unreal_arguments
    from unreal_bridge.unrealcv_server import add_arguments as add_serve_arguments

    p = isub.add_parser("unreal", help="MP4 + CSV recordings made inside Unreal by an in-engine recorder",
                        description="Import in-engine Unreal recordings (per-frame time, pressed keys, location in "
                                    "cm, rotator in degrees; columns in unreal_bridge/UE_EXPORT.md). Bad recordings "
                                    "are quarantined with their reasons; the others import.")
    add_unreal_arguments(p)
    p.set_defaults(func=lambda a: _run_bridge("unreal_bridge.ue_import", a))

    p = isub.add_parser("gta", help="GTA V sessions recorded by the PlaymillRecorder mod + OBS video",
                        description="Import GTA V recording sessions (behaviour.jsonl, ticks.csv and the OBS video): "
                                    "align video frames to game ticks by the sync marker (or image motion), infer "
                                    "W/S/A/D and handbrake from the vehicle dynamics, convert to the Unreal frame. "
                                    "See gta_bridge/README.md for the whole workflow.")
    add_gta_arguments(p)
    p.set_defaults(func=cmd_import_gta)

    p = sub.add_parser("validate", help="check episodes against the playmill.episode/1 format",
                       description="Check episode folders (or folders of episodes): files, meta.json, every "
                                   "actions.csv row and column, the video. Prints every problem with its file, "
                                   "row and column; exits 1 if any episode is invalid.")
    p.add_argument("paths", nargs="+", type=Path, help="episode folders or folders containing episodes")
    p.add_argument("--no-video", action="store_true", help="skip the video checks (faster)")
    p.set_defaults(func=cmd_validate)

    sb = sub.add_parser("sandbox", help="the built-in sandbox world", description="The built-in sandbox world.")
    sbsub = sb.add_subparsers(dest="sandbox_verb", metavar="VERB", required=True)
    p = sbsub.add_parser("preview", help="render one frame of a sandbox scene to a PNG",
                         description="Render frame 0 of a procedural sandbox scene to a PNG to look at.")
    p.add_argument("--scene", default="city", choices=["city", "indoor", "park"], help="scene family")
    p.add_argument("--seed", type=int, default=0, help="scene seed")
    p.add_argument("-o", "--output", type=Path, default=Path("preview.png"), help="PNG to write")
    p.add_argument("--width", type=int, default=640, help="image width")
    p.add_argument("--height", type=int, default=352, help="image height")
    p.add_argument("--weather", default="clear", choices=["clear", "overcast", "fog"], help="weather")
    p.add_argument("--time-of-day", type=float, default=12.0, help="hours, 0-24")
    p.add_argument("--npc-density", type=float, default=0.5, help="NPC density multiplier")
    p.add_argument("--vehicle-density", type=float, default=0.5, help="vehicle density multiplier")
    p.set_defaults(func=cmd_sandbox_preview)
    p = sbsub.add_parser("serve", help="serve the sandbox over the UnrealCV protocol",
                         description="Serve a sandbox level over the UnrealCV wire protocol (the real unrealcv "
                                     "client connects to it). Binds 127.0.0.1 unless --host says otherwise.")
    add_serve_arguments(p)
    p.set_defaults(func=lambda a: _run_bridge("unreal_bridge.unrealcv_server", a))

    from rl_agent.cli import add_arguments as add_rl_arguments

    add_rl_arguments(sub)  # playmill rl train|eval (func=rl_agent.cli.run_from_args)

    from playmill.cli_model import add_model_verbs

    add_model_verbs(sub, argparse.RawDescriptionHelpFormatter)
    return parser


def _load(path: Path | None, required: bool):
    from playmill.config import PipelineConfig, load_config

    if path is not None and (required or path.exists()):
        return load_config(path)
    return PipelineConfig()


def cmd_run(args: argparse.Namespace) -> int:
    from playmill.config import STAGES
    from playmill.stages import run_pipeline

    cfg = _load(args.config, required=True)
    if args.workdir:
        cfg.workdir = args.workdir.resolve()
    stages = cfg.stages
    if args.stages:
        stages = [s.strip() for s in args.stages.split(",") if s.strip()]
        bad = [s for s in stages if s not in STAGES]
        if bad:
            print(f"playmill run: --stages: unknown stage(s) {bad}; allowed: {', '.join(STAGES)}", file=sys.stderr)
            return 2
    results = run_pipeline(cfg, stages, progress=not args.no_progress)
    return _report_collect(results.get("collect"), cfg)


def cmd_collect(args: argparse.Namespace) -> int:
    from playmill.config import parse_config
    from playmill.stages import run_collect

    cfg = _load(args.config, required=False)
    overrides = {k: getattr(args, k) for k in ("frames", "workers", "width", "height", "fps") if getattr(args, k) is not None}
    if args.episodes is not None:
        overrides["episodes_per_scene"] = args.episodes
    if args.scenes:
        overrides["scenes"] = [s.strip() for s in args.scenes.split(",") if s.strip()]
    if overrides or args.seed is not None:
        # re-validate the overrides with the same rules and messages as the file
        doc = {"collect": overrides}
        if args.seed is not None:
            doc["seed"] = args.seed
        checked = parse_config(doc, "command line")
        for k in overrides:
            setattr(cfg.collect, k, getattr(checked.collect, k))
        if args.seed is not None:
            cfg.seed = checked.seed
    if args.workdir:
        cfg.workdir = args.workdir.resolve()
    result = run_collect(cfg, progress=not args.no_progress)
    return _report_collect(result, cfg)


def _report_collect(result, cfg) -> int:
    if result is None:
        return 0
    print(f"collect: {len(result.written)} episode(s) written, {len(result.skipped)} already present, "
          f"{len(result.failed)} failed -> {cfg.episodes_dir}")
    for eid, reason in result.failed:
        print(f"  FAILED {eid}: {reason.splitlines()[0]}", file=sys.stderr)
    if result.removed_temp:
        print(f"  removed {len(result.removed_temp)} unfinished episode(s) left by an interrupted run")
    return 1 if result.failed else 0


def cmd_curate(args: argparse.Namespace) -> int:
    from playmill.stages import run_curate

    cfg = _load(args.config, required=False)
    if args.workdir:
        cfg.workdir = args.workdir.resolve()
    if args.engine:
        cfg.curate.engine = args.engine
    if args.workers is not None:
        if args.workers < 1:
            print(f"playmill curate: --workers: {args.workers} is not allowed; expected an integer >= 1", file=sys.stderr)
            return 2
        cfg.curate.workers = args.workers
    res = run_curate(cfg, progress=not args.no_progress)
    state = "up to date" if res.up_to_date else f"{res.processed} episode(s) curated, {res.reused} reused"
    print(f"curate: {state}; {res.clips} clip(s) in {len(res.shards)} shard(s), {res.rejected} episode(s) "
          f"rejected, {res.rejects} reject record(s) -> {res.out_dir}")
    print(f"  report: {res.out_dir / 'report.html'}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from curation import inspect_shards, verify_shards, write_report

    print(inspect_shards(args.shards))
    if not args.no_report:
        print(f"report: {write_report(args.shards)}")
    if args.verify:
        problems = verify_shards(args.shards)
        for pr in problems:
            print(f"  PROBLEM {pr}")
        print("verify: ok" if not problems else f"verify: {len(problems)} problem(s)")
        return 1 if problems else 0
    return 0


def _read_yaml(path: Path | None) -> dict:
    import yaml

    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read it as YAML: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data or {}


def _report_import(res) -> int:
    print(f"import: {len(res.written)} episode(s) written, {len(res.skipped)} already present, "
          f"{len(res.failed)} failed")
    for name, reason in res.failed:
        print(f"  FAILED {name}: {reason}", file=sys.stderr)
    return 1 if res.failed else 0


def cmd_import_sekai(args: argparse.Namespace) -> int:
    from curation import import_sekai

    return _report_import(import_sekai(args.src, args.out, _read_yaml(args.config)))


def cmd_import_generic(args: argparse.Namespace) -> int:
    from curation import import_generic

    args.out.mkdir(parents=True, exist_ok=True)
    path = import_generic(args.mp4, args.csv, args.out, _read_yaml(args.mapping))
    print(f"import: wrote {path}")
    return 0


def _run_bridge(module: str, args: argparse.Namespace) -> int:
    import importlib

    return importlib.import_module(module).run_from_args(args)


def cmd_import_gta(args: argparse.Namespace) -> int:
    from gta_bridge.importer import run_from_args

    args.episodes_dir.mkdir(parents=True, exist_ok=True)
    return run_from_args(args)


def cmd_validate(args: argparse.Namespace) -> int:
    from capture.validate import validate_paths

    missing = [p for p in args.paths if not p.exists()]
    for p in missing:
        print(f"{p}: no such file or folder", file=sys.stderr)
    reports = validate_paths([p for p in args.paths if p.exists()], check_video=not args.no_video)
    bad = 0
    for ep, problems in reports.items():
        if problems:
            bad += 1
            print(f"INVALID {ep} ({len(problems)} problem(s))")
            for pr in problems:
                print(f"  {pr}")
        else:
            print(f"ok      {ep}")
    if not reports and not missing:
        print("no episodes found (an episode is a folder with meta.json, actions.csv and video.mp4)", file=sys.stderr)
        return 1
    print(f"{len(reports) - bad} valid, {bad} invalid")
    return 1 if bad or missing else 0


def cmd_sandbox_preview(args: argparse.Namespace) -> int:
    from unreal_bridge.sandbox import render_preview

    out = render_preview(args.scene, args.seed, args.output, width=args.width, height=args.height,
                         weather=args.weather, time_of_day=args.time_of_day, npc_density=args.npc_density,
                         vehicle_density=args.vehicle_density)
    print(f"wrote {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from playmill.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        print("Nothing was run. Fix the key(s) above; `playmill --help` lists the verbs.", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        print(f"playmill {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume (finished work is kept)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
