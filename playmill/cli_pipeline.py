"""The pipeline verbs of ``playmill``: ``run``, ``config show|schema``, ``collect``, ``curate`` (declared with
:func:`playmill.cli.add_verb`; each ends with the run's summary table)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from playmill.cli import UsageError, add_no_verify, add_progress, add_sugar, add_verb, load, print_run


def add_verbs(sub: Any) -> None:
    p = add_verb(sub, "run", help="run the stages of a pipeline.yaml in order",
                 description="Check the whole config, then run its stages in pipeline order (rl -> collect -> curate "
                             "-> train -> distill -> generate -> eval) and end with one summary table: each stage done, "
                             "skipped (nothing left to do) or failed, what it wrote, where, how long, then the "
                             "warnings and the files to open. Resumable: a rerun skips finished work.",
                 example="playmill run pipeline.yaml --set train.max_steps=500 --set collect.scenes=[indoor]",
                 func=cmd_run)
    p.add_argument("--stages", help="comma-separated stages to run instead of the config's, e.g. collect,curate")
    add_sugar(p, "--workdir", "workdir", "where the run writes (relative to the working directory)", metavar="DIR")
    add_no_verify(p)
    add_progress(p)

    cfg = add_verb(sub, "config", help="show the resolved config or its JSON Schema", config=None,
                   description="The pipeline config: `show` prints it resolved, every default included, as YAML that "
                               "loads back to the same; `schema` prints the JSON Schema of pipeline.yaml (the types, "
                               "ranges, defaults and docs of every key; editors use it to check and complete the file).",
                   example="playmill config show pipeline.yaml --set train.preset=mg2-1.3b")
    csub = cfg.add_subparsers(dest="config_verb", metavar="VERB", required=True)
    add_verb(csub, "show", help="print the resolved config as YAML", func=cmd_config_show,
             description="Print the config (CONFIG with its --set overrides) resolved: every key with the value a run "
                         "would use, presets applied, paths absolute.",
             example="playmill config show --set collect.workers=4 > resolved.yaml")
    p = add_verb(csub, "schema", help="print the JSON Schema of pipeline.yaml", func=cmd_config_schema, config=None,
                 description="Print the JSON Schema of pipeline.yaml; playmill/pipeline.schema.json is this output.",
                 example="playmill config schema -o playmill/pipeline.schema.json")
    p.add_argument("-o", "--output", type=Path, help="write it to this file instead of printing it")

    p = add_verb(sub, "collect", help="record episodes (the collect stage alone)", func=cmd_collect,
                 description="Record episodes into <workdir>/episodes with the config's collect section. Episode ids "
                             "are deterministic: a rerun skips finished episodes and completes the rest.",
                 example="playmill collect --scenes indoor --episodes 2 --frames 100")
    for flag, key, what in (("--workdir", "workdir", "where the run writes"),
                            ("--episodes", "collect.episodes_per_scene", "episodes per scene"),
                            ("--frames", "collect.frames", "frames per episode"),
                            ("--workers", "collect.workers", "parallel worker processes (or streams on Ray)"),
                            ("--engine", "collect.engine", "local or ray (on ray.address)"),
                            ("--width", "collect.width", "video width, px (even)"),
                            ("--height", "collect.height", "video height, px (even)"),
                            ("--fps", "collect.fps", "frames per second"),
                            ("--seed", "seed", "base seed of the run")):
        add_sugar(p, flag, key, what)
    add_sugar(p, "--scenes", "collect.scenes", "comma-separated scene families: city, indoor, park", as_list=True)
    add_progress(p)

    p = add_verb(sub, "curate", help="curate episodes into Parquet shards (the curate stage alone)", func=cmd_curate,
                 description="Run the curate stage: redundant frames, velocity validation, resampling, resize/crop, "
                             "57-frame clips, the held-out split and the action-label check -> <workdir>/shards/<dataset>/ with manifest.json, rejects.parquet and "
                             "report.html. Resumable.",
                 example="playmill curate --workers 4 --set curate.output.frame_codec=jpeg")
    add_sugar(p, "--workdir", "workdir", "where the run writes")
    add_sugar(p, "--engine", "curate.engine", "local or ray")
    add_sugar(p, "--workers", "curate.workers", "worker processes (or Ray CPUs)")
    add_progress(p)


def cmd_run(args: argparse.Namespace) -> int:
    from playmill.config import STAGES
    from playmill.stages import run_pipeline

    cfg = load(args)
    stages = None
    if args.stages:
        stages = [s.strip() for s in args.stages.split(",") if s.strip()]
        bad = [s for s in stages if s not in STAGES]
        if bad or not stages:
            raise UsageError(f"--stages: {', '.join(bad) or 'none given'} is not a stage; expected a comma-separated "
                             f"list of {', '.join(STAGES)}")
    return print_run(run_pipeline(cfg, stages, progress=not args.no_progress))


def cmd_config_show(args: argparse.Namespace) -> int:
    from playmill.config import config_yaml

    sys.stdout.write(config_yaml(load(args)))
    return 0


def cmd_config_schema(args: argparse.Namespace) -> int:
    from playmill.config import pipeline_schema

    if args.output:
        from capture.atomic import write_text_atomic

        print(f"wrote {write_text_atomic(args.output, pipeline_schema())}")
    else:
        sys.stdout.write(pipeline_schema())
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from playmill.stages import run_pipeline

    return print_run(run_pipeline(load(args), ["collect"], progress=not args.no_progress, reraise=(UsageError,)))


def cmd_curate(args: argparse.Namespace) -> int:
    from playmill.stages import run_pipeline

    return print_run(run_pipeline(load(args), ["curate"], progress=not args.no_progress, reraise=(UsageError,)))
