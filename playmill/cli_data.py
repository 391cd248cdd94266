"""The data verbs of ``playmill``: ``validate``, ``inspect``, ``import sekai|generic|vpt|gta|unreal`` and
``sandbox preview|serve`` (declared with :func:`playmill.cli.add_verb`; their arguments are data, so the
pipeline config is ``--config``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from playmill.cli import add_sugar, add_verb, existing, load


def add_verbs(sub: Any) -> None:
    p = add_verb(sub, "validate", help="check episodes against the playmill.episode/1 format", func=cmd_validate,
                 config="option",
                 description="Check episode folders (or folders of episodes): files, meta.json, every actions.csv row "
                             "and column, the video. Prints every problem with its file, row and column; exits 1 if "
                             "any episode is invalid. Without PATH: the config's <workdir>/episodes. With --actions, "
                             "also the action labels against the camera motion in the video (curate.consistency).",
                 example="playmill validate --actions --fov 90 runs/default/episodes")
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="episode folders or folders of episodes")
    p.add_argument("--no-video", action="store_true", help="skip the video checks (faster)")
    p.add_argument("--actions", action="store_true",
                   help="also check the action labels against the camera motion in the video, per episode and per "
                        "source pooled: names convention errors (yaw/pitch sign, swapped axes, shifted rows, radians "
                        "or counts, W/S or A/D swapped, unrelated labels) and their fixes")
    add_sugar(p, "--fov", "curate.consistency.fov_deg", "with --actions: horizontal field of view in degrees of "
                                                         "episodes whose meta.json has no config.fov_deg (otherwise "
                                                         "the mouse-scale test is skipped)", metavar="DEG")

    p = add_verb(sub, "inspect", help="summarise a shards folder; --verify checks it", func=cmd_inspect,
                 config="option",
                 description="Print a summary of a shards folder (clips, hours per source, rejects by reason, action "
                             "statistics) and write report.html with plots and preview strips. Without SHARDS: the "
                             "config's <workdir>/shards/<curate.dataset>.",
                 example="playmill inspect runs/default/shards/default --verify")
    p.add_argument("shards", nargs="?", type=Path, help="a shards folder (with manifest.json)")
    p.add_argument("--verify", action="store_true", help="check every shard's sha256, size, rows and schema against "
                                                         "the manifest; exit 1 on any problem")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    _add_import_verbs(sub)
    _add_sandbox_verbs(sub)


def _add_import_verbs(sub: Any) -> None:
    imp = add_verb(sub, "import", help="bring existing recordings in as episodes", config=None,
                   description="Convert recordings from other sources into playmill episodes (default folder: the "
                               "config's <workdir>/episodes). Settings: the imports section of the config.",
                   example="playmill import sekai SEKAI_DIR --set imports.sekai.workers=4")
    isub = imp.add_subparsers(dest="import_verb", metavar="SOURCE", required=True)
    p = add_verb(isub, "sekai", help="Sekai videos + camera extrinsics (.npz)", func=cmd_import_sekai, config="option",
                 description="Import every *.mp4 under SRC with its <stem>.npz camera file (key 'extrinsic', in the "
                             "world frame imports.sekai.world; Sekai's: OpenCV axes, y down) as a 'sekai' episode: keys "
                             "from camera translation, mouse from relative rotation. The labels are checked against "
                             "the motion in each video (imports.sekai.check); a clip whose motion contradicts the "
                             "world frame is refused with the frame that fits it. --check only diagnoses.",
                 example="playmill import sekai SEKAI_DIR --out runs/sekai/episodes --set imports.sekai.world.up=+z")
    p.add_argument("src", type=existing("folder or file"), help="folder of Sekai clips")
    _out_arg(p)
    _check_arg(p)
    p = add_verb(isub, "generic", help="videos + an actions CSV, described by a column mapping", func=cmd_import_generic,
                 config="option",
                 description="Import videos and their actions log (any CSV layout) as 'generic' episodes. The column "
                             "mapping (--mapping FILE, YAML, or imports.generic of the config; every key in `playmill "
                             "config schema` and the README) says what each column means: keys (columns, a list "
                             "column, a bitmask), look deltas or absolute angles in any units and direction, a row or "
                             "time offset, poses and their world frame, an episode column for a CSV of many episodes. "
                             "--check diagnoses the labels against the videos and prints the mapping change that "
                             "fixes a convention error, without importing.",
                 example="playmill import generic 'clips/*.mp4' log.csv --mapping map.yaml --check")
    p.add_argument("video", help="a video, or a quoted glob pattern of videos ('clips/*.mp4')")
    p.add_argument("csv", help="the actions CSV (rows per frame or timed), or a quoted glob pattern of CSVs")
    p.add_argument("--mapping", type=existing("mapping file"),
                   help="YAML column mapping (keys: the imports.generic section; see the README)")
    _out_arg(p)
    _check_arg(p)
    p = add_verb(isub, "vpt", help="OpenAI VPT Minecraft contractor recordings (mp4 + jsonl)", func=cmd_import_vpt,
                 config="option",
                 description="Import OpenAI's VPT Minecraft contractor recordings (<name>.mp4 + <name>.jsonl, one JSON "
                             "line per tick, as the published loader reads them) under SRC: Minecraft keys onto the "
                             "action space (other keys kept as vpt_key_* extras), mouse counts to degrees with the "
                             "camera sensitivity (imports.vpt.sensitivity), ticks aligned to video frames, GUI and "
                             "inventory spans quarantined with their reasons. --check only diagnoses the labels.",
                 example="playmill import vpt vpt_data/ --set imports.vpt.sensitivity=0.5")
    p.add_argument("src", type=existing("folder"), help="folder of VPT recordings (recursive)")
    _out_arg(p)
    _check_arg(p)
    add_sugar(p, "--sensitivity", "imports.vpt.sensitivity", "the players' Minecraft mouseSensitivity (0-1)")
    p = add_verb(isub, "gta", help="GTA V sessions recorded by the PlaymillRecorder mod + OBS video",
                 func=cmd_import_gta, config="option",
                 description="Import GTA V recording sessions (behaviour.jsonl, ticks.csv and the OBS video): align "
                             "video frames to game ticks by the sync marker (or image motion), infer W/S/A/D and "
                             "handbrake from the vehicle dynamics, convert to the Unreal frame (settings: imports.gta; "
                             "gta_bridge/README.md has the whole workflow).",
                 example="playmill import gta recordings/session-01 --set imports.gta.fps=20")
    p.add_argument("recordings", nargs="+", type=Path, help="recording session folders")
    _out_arg(p)
    for flag, key, what in (("--fps", "imports.gta.fps", "output frame rate"),
                            ("--width", "imports.gta.width", "output width, px (even)"),
                            ("--height", "imports.gta.height", "output height, px (even)"),
                            ("--sync", "imports.gta.sync", "auto, marker or motion"),
                            ("--min-frames", "imports.gta.min_episode_frames", "shortest episode kept, frames")):
        add_sugar(p, flag, key, what)
    p = add_verb(isub, "unreal", help="MP4 + CSV recordings made inside Unreal by an in-engine recorder",
                 func=cmd_import_unreal, config="option",
                 description="Import in-engine Unreal recordings (per-frame time, pressed keys, location in cm, rotator "
                             "in degrees; columns in unreal_bridge/UE_EXPORT.md). Bad recordings are quarantined with "
                             "their reasons; the others import (settings: imports.unreal).",
                 example="playmill import unreal recordings/ --set imports.unreal.fps=30")
    p.add_argument("src", type=existing("folder"), help="folder with <name>.mp4 + <name>.csv recordings (recursive)")
    _out_arg(p)
    for flag, key, what in (("--fps", "imports.unreal.fps", "episode frame rate"),
                            ("--width", "imports.unreal.width", "output width, px (even)"),
                            ("--height", "imports.unreal.height", "output height, px (even)")):
        add_sugar(p, flag, key, what)


def _add_sandbox_verbs(sub: Any) -> None:
    sb = add_verb(sub, "sandbox", help="the built-in sandbox world", config=None,
                  description="The built-in sandbox world: look at a scene, or serve it over the UnrealCV protocol.",
                  example="playmill sandbox preview --scene city --seed 3 -o city.png")
    sbsub = sb.add_subparsers(dest="sandbox_verb", metavar="VERB", required=True)
    for name, func, what in (("preview", cmd_sandbox_preview, "render frame 0 of a sandbox scene to a PNG"),
                             ("serve", cmd_sandbox_serve, "serve the sandbox over the UnrealCV protocol")):
        p = add_verb(sbsub, name, help=what, func=func, config="option",
                     description=what[0].upper() + what[1:] + ". The options are the sandbox's "
                                 "(unreal_bridge.unrealcv_server.ServerConfig); serve binds 127.0.0.1 unless --host "
                                 "says otherwise.",
                     example=("playmill sandbox preview --scene city --seed 3 --time-of-day 18 -o city.png"
                              if name == "preview" else "playmill sandbox serve --port 9000 --scene park --seed 3"))
        _sandbox_options(p, serve=name == "serve")


def _out_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, help="episodes folder to write (default: the config's <workdir>/episodes)")


def _check_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--check", action="store_true",
                   help="only diagnose the labels against the video and print the config change that fixes a "
                        "convention error (nothing is written; exit 1 on a fault)")


def _sandbox_options(p: argparse.ArgumentParser, serve: bool) -> None:
    from unreal_bridge.unrealcv_server import ServerConfig

    p.add_argument("--scene", default="city", help="scene family: city, indoor, park")
    p.add_argument("--seed", default="0", help="scene seed")
    p.add_argument("--width", default="640", help="image width, px")
    p.add_argument("--height", default="480" if serve else "352", help="image height, px")
    p.add_argument("--fov", dest="fov_deg", default="90", help="horizontal field of view, degrees")
    p.add_argument("--weather", default="clear", help="clear, overcast, fog or rain")
    p.add_argument("--time-of-day", dest="time_of_day", default="12", help="hours, 0-24")
    p.add_argument("--npc-density", dest="npc_density", default="0.5", help="NPC density multiplier, 0-2")
    p.add_argument("--vehicle-density", dest="vehicle_density", default="0.5", help="vehicle density multiplier, 0-2")
    if serve:
        p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
        p.add_argument("--port", default="9000", help="TCP port (0: any free port)")
        p.add_argument("--fps", default="25", help="simulation rate of vset /action/keyboard")
        for flag, key in (("--max-clients", "max_clients"), ("--max-request-bytes", "max_request_bytes"),
                          ("--idle-timeout", "idle_timeout_s")):
            f = ServerConfig.__pydantic_fields__[key]
            p.add_argument(flag, dest=key, metavar="N", help=f"{f.description} (default {f.default:g})")
    else:
        p.add_argument("-o", "--output", type=Path, default=Path("preview.png"), help="PNG to write")


def _sandbox_config(args: argparse.Namespace, serve: bool):
    """The sandbox options as a checked :class:`ServerConfig` (errors name the option)."""
    from unreal_bridge.unrealcv_server import ServerConfig

    keys = ["scene", "seed", "width", "height", "fov_deg", "weather", "time_of_day", "npc_density", "vehicle_density"]
    keys += ["host", "port", "fps", "max_clients", "max_request_bytes", "idle_timeout_s"] if serve else []
    return ServerConfig.from_dict({k: getattr(args, k) for k in keys if getattr(args, k) is not None}, "command line")


def cmd_validate(args: argparse.Namespace) -> int:
    from capture.validate import validate_paths

    cfg = load(args) if args.actions or not args.paths else None
    paths = args.paths or [cfg.episodes_dir]
    reports = validate_paths(paths, check_video=not args.no_video)
    bad = 0
    for ep, problems in reports.items():
        if problems:
            bad += 1
            print(f"INVALID {ep} ({len(problems)} problem(s))")
            for pr in problems:
                print(f"  {pr}")
        else:
            print(f"ok      {ep}")
    if not reports:
        print("no episodes found (an episode is a folder with meta.json, actions.csv and video.mp4)", file=sys.stderr)
        return 1
    print(f"{len(reports) - bad} valid, {bad} invalid")
    failed = 0
    if args.actions:
        failed = report_actions([Path(ep) for ep, problems in reports.items() if not problems],
                                cfg.curate.consistency)
    return 1 if bad or failed else 0


def report_actions(episodes: list[Path], config: Any) -> int:
    """Print the action-label check of ``episodes`` (per episode, then per source pooled) with
    :class:`curation.config.ConsistencyConfig` ``config``; the number that fail."""
    from curation.consistency import check_episodes

    res = check_episodes(episodes, config, progress=True)
    sys.stderr.flush()
    failed = 0
    print("action labels against the video:")
    for c in res.episodes:
        if c.error is not None or c.diagnosis is None:
            failed += 1
            print(f"  ERROR   {c.episode_id}: {c.error}")
        elif c.diagnosis.ok:
            print(f"  ok      {c.episode_id}: {c.diagnosis.summary()}")
        else:
            failed += 1
            print(f"  FAILED  {c.episode_id}:")
            for f in c.diagnosis.faults:
                print(f"            {f.what}\n              fix: {f.fix}")
    for src, d in res.imports.items():
        verdict = "ok" if d.ok else "FAILED"
        print(f"  import {src} ({sum(1 for c in res.episodes if c.source == src)} episodes pooled): {verdict}: "
              f"{d.summary()}")
        failed += int(not d.ok)
    good = sum(1 for c in res.episodes if c.diagnosis is not None and c.diagnosis.ok)
    print(f"{good} episode(s) with consistent labels, {len(res.episodes) - good} failed")
    return failed


def cmd_inspect(args: argparse.Namespace) -> int:
    from curation import inspect_shards, verify_shards, write_report

    shards = args.shards or load(args).shards_dir
    print(inspect_shards(shards))
    if not args.no_report:
        print(f"report: {write_report(shards)}")
    if args.verify:
        problems = verify_shards(shards)
        for pr in problems:
            print(f"  PROBLEM {pr}")
        print("verify: ok" if not problems else f"verify: {len(problems)} problem(s)")
        return 1 if problems else 0
    return 0


def _report_import(res: Any, source: str, out: Path) -> int:
    """The import's summary: what was written where, then each failure with its reason; the exit code of
    :attr:`capture.imports.ImportResult.exit_code` (1 if a recording failed or nothing came of the input)."""
    sys.stderr.flush()
    print(f"import {source}: {len(res.written)} episode(s) written, {len(res.skipped)} already there, "
          f"{len(res.failed)} failed, {res.frames} frames -> {out}", flush=True)
    for line in res.notes:
        print(f"  {line}")
    for name, reason in res.failed:
        print(f"  FAILED {name}: {reason}")
    for w in res.warnings:
        print(f"  warning: {w}")
    if res.rejects_path:
        print(f"  rejects: {res.rejects_path}")
    if res.nothing is not None:
        print(f"import {source}: nothing imported: {res.nothing}", file=sys.stderr)
    elif not (res.written or res.skipped):
        print(f"import {source}: nothing imported: every recording failed (reasons above)", file=sys.stderr)
    return res.exit_code


def _run_import(args: argparse.Namespace, importer: Any) -> int:
    """Load the config, import into ``--out`` (default ``<workdir>/episodes``) with ``importer(cfg, out)``,
    report."""
    cfg = load(args)
    out = args.out or cfg.episodes_dir
    return _report_import(importer(cfg, out), args.import_verb, out)


def _report_check(report: Any, what: str) -> int:
    """Print a label check (:class:`curation.import_check.CheckReport`); exit 0 when the labels agree, else 1."""
    sys.stderr.flush()
    n = len(report.episodes)
    print(f"check {what}: {n} episode(s) diagnosed against their video" + (f", {len(report.failed)} not checked"
                                                                          if report.failed else ""))
    for line in report.lines():
        print(line)
    if report.diagnosis is None:
        print("nothing could be checked", file=sys.stderr)
        return 1
    print("labels agree with the video" if report.ok else "labels disagree with the video (fix above)")
    return 0 if report.ok else 1


def cmd_import_sekai(args: argparse.Namespace) -> int:
    from curation.importers import check_sekai, import_sekai

    if args.check:
        return _report_check(check_sekai(args.src, load(args).imports.sekai), "sekai")
    return _run_import(args, lambda cfg, out: import_sekai(args.src, out, cfg.imports.sekai))


def cmd_import_generic(args: argparse.Namespace) -> int:
    from capture.settings import load_yaml
    from curation.generic import GenericMapping, check_generic, import_generic

    cfg = load(args)
    mapping = cfg.imports.generic
    if args.mapping is not None:
        mapping = GenericMapping.from_dict(load_yaml(args.mapping), str(args.mapping))
    if args.check:
        return _report_check(check_generic(args.video, args.csv, mapping), "generic")
    out = args.out or cfg.episodes_dir
    return _report_import(import_generic(args.video, args.csv, out, mapping), "generic", out)


def cmd_import_vpt(args: argparse.Namespace) -> int:
    from curation.vpt import check_vpt, import_vpt

    if args.check:
        return _report_check(check_vpt(args.src, load(args).imports.vpt), "vpt")
    return _run_import(args, lambda cfg, out: import_vpt(args.src, out, cfg.imports.vpt))


def cmd_import_gta(args: argparse.Namespace) -> int:
    from gta_bridge.importer import import_gta_sessions

    return _run_import(args, lambda cfg, out: import_gta_sessions(args.recordings, out, cfg.imports.gta))


def cmd_import_unreal(args: argparse.Namespace) -> int:
    from unreal_bridge.ue_import import import_unreal

    return _run_import(args, lambda cfg, out: import_unreal(args.src, out, cfg.imports.unreal))


def cmd_sandbox_preview(args: argparse.Namespace) -> int:
    from unreal_bridge.sandbox import render_preview

    load(args)  # the config is checked like every verb's
    o = _sandbox_config(args, serve=False)
    out = render_preview(o.scene, o.seed, args.output, width=o.width, height=o.height, fov_deg=o.fov_deg,
                         weather=o.weather, time_of_day=o.time_of_day, npc_density=o.npc_density,
                         vehicle_density=o.vehicle_density)
    print(f"wrote {out}")
    return 0


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    import logging

    from unreal_bridge.unrealcv_server import serve

    load(args)
    o = _sandbox_config(args, serve=True)
    logging.getLogger("unreal_bridge").setLevel(logging.INFO)
    serve(o)
    return 0
