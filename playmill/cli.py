"""The ``playmill`` command line: argparse, every verb declared the same way (:func:`add_verb`), each a thin
function that parses, loads the config and calls the library function that tests call too.

Every verb takes the pipeline config (``CONFIG``, default ``./pipeline.yaml``, else the built-in defaults: the
first argument of the verbs that run a stage, ``--config`` for the verbs whose arguments are data) and repeated
``--set SECTION.KEY=VALUE`` (typed by the schema, values in YAML syntax). Convenience flags (``--workers``,
``--episodes``, ...) are the same overrides under another name.

Exit codes (one rule for every verb, decided by the class of the error: :mod:`capture.errors`): 0 done; 1 the data
being processed is unusable or some items failed (each is reported; :class:`capture.errors.InputError`); 2 what the
user wrote is wrong: the command line, the config, a ``--set``, a mapping or settings file, a path that does not
exist (:class:`capture.errors.UsageError`; nothing was run); 130 / 143 stopped by Ctrl-C / SIGTERM (it says what it
kept).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from capture.errors import InputError, UsageError
from playmill import __version__

EPILOG = """\
examples:
  playmill run pipeline.yaml                           every stage of the pipeline (sandbox, no game needed)
  playmill run pipeline.yaml --set train.max_steps=500 --set collect.scenes=[indoor]
  playmill config show --set train.preset=mg2-1.3b     the resolved config, every default included
  playmill collect --scenes indoor --episodes 2 --frames 100
  playmill validate --actions runs/default/episodes     also the action labels against the video
  playmill eval                                         the trained models on held-out test episodes

exit codes: 0 done; 1 the data is unusable or some items failed (each is reported); 2 what you wrote is wrong: a
flag, a config key, a mapping file, a path that does not exist (nothing was run); 130 / 143 stopped by Ctrl-C /
SIGTERM (finished work is kept; rerun to resume).
`playmill VERB --help` explains a verb, with an example.
"""


# --------------------------------------------------------------------------------------------------------
# declaring verbs


def add_verb(sub: Any, name: str, *, help: str, description: str, example: str,
             func: Callable[[argparse.Namespace], int] | None = None, config: str | None = "positional"
             ) -> argparse.ArgumentParser:
    """A verb (or group of verbs) on ``sub``: its help, description and an example (the end of its help).
    ``config``: ``positional`` (``[CONFIG]`` first), ``option`` (``--config``) or None (a group of verbs).
    Every verb with a config takes ``--set``."""
    p = sub.add_parser(name, help=help, description=description, epilog="example:\n  " + example,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    if config == "positional":
        p.add_argument("config", nargs="?", type=Path, metavar="CONFIG",
                       help="pipeline config (default: ./pipeline.yaml if it exists, else the built-in defaults)")
    elif config == "option":
        p.add_argument("-c", "--config", type=Path, metavar="CONFIG",
                       help="pipeline config (default: ./pipeline.yaml if it exists, else the built-in defaults)")
    if config is not None:
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override a config key (repeatable; YAML value: 1e-4, true, [a, b], {k: v}); "
                            "`playmill config show` prints every key")
        p.set_defaults(sugar={})
    if func is not None:
        p.set_defaults(func=func)
    return p


def add_sugar(p: argparse.ArgumentParser, flag: str, key: str, help: str, *, as_list: bool = False,
              metavar: str | None = None, const: str | None = None) -> None:
    """``flag VALUE`` = ``--set key=VALUE`` (checked by the schema like any override). ``as_list``: the value
    is comma-separated (``--scenes city,park``). ``const``: a switch without a value, ``flag`` = ``--set
    key=const`` (``--no-verify`` = ``--set verify_shards=false``)."""
    dest = "sugar_" + flag.lstrip("-").replace("-", "_")
    if const is None:
        p.add_argument(flag, dest=dest, metavar=metavar or "VALUE", help=f"{help} (= --set {key}=...)")
    else:
        p.add_argument(flag, dest=dest, action="store_const", const=const, help=f"{help} (= --set {key}={const})")
    p.get_default("sugar")[dest] = (key, flag, as_list)


def add_no_verify(p: argparse.ArgumentParser) -> None:
    """``--no-verify`` of the verbs that read shards."""
    add_sugar(p, "--no-verify", "verify_shards", "do not check each shard's size and sha256 against manifest.json "
              "when opening the shards (faster on huge datasets; a corrupt shard then fails later)", const="false")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def load(args: argparse.Namespace, extra: Sequence[str] = ()):
    """The :class:`playmill.config.PipelineConfig` of a verb: its CONFIG, convenience flags, then ``--set``
    items (later ones win), then ``extra`` overrides; :class:`capture.settings.ConfigError` naming every bad key
    and where it was set."""
    import yaml

    from capture.settings import ConfigError
    from playmill.config import load_config

    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for dest, (key, flag, as_list) in getattr(args, "sugar", {}).items():
        raw = getattr(args, dest, None)
        if raw is None:
            continue
        text = "[" + raw + "]" if as_list else raw
        try:
            values[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise ConfigError(flag, [f"{raw!r} is not a value (for {key})"]) from None
        origin[key] = f"{flag} {raw}"
    from capture.settings import parse_set

    for item in list(getattr(args, "overrides", [])) + list(extra):
        for key, value in parse_set([item]).items():
            values[key], origin[key] = value, f"--set {item}"
    return load_config(getattr(args, "config", None), _Overrides(values, origin))


class _Overrides(dict):
    """Override values that remember the flag that set each key (for the error messages)."""

    def __init__(self, values: dict, origin: dict):
        super().__init__(values)
        self.origin = origin


def existing(kind: str = "path") -> Callable[[str], Path]:
    """An argparse type: a path that must exist (a usage error otherwise, before anything runs)."""

    def check(text: str) -> Path:
        p = Path(text)
        if not p.exists():
            raise argparse.ArgumentTypeError(f"{text}: no such {kind}")
        return p

    return check


def print_run(run: Any, extra: Sequence[str] = ()) -> int:
    """Print a run's summary table (after the progress bars are done) and return its exit code."""
    sys.stderr.flush()
    print(run.table(Path.cwd()), flush=True)
    for line in extra:
        print(line, flush=True)
    return run.exit_code


# --------------------------------------------------------------------------------------------------------
# the parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="playmill",
        description="playmill: action-annotated gameplay video for interactive world models. Collect episodes "
                    "from the built-in sandbox (or Unreal / GTA V), curate them into Parquet shards, train and "
                    "distil a Matrix-Game 2.0 style world model, all from one pipeline.yaml.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"playmill {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages (and tracebacks)")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    from playmill import cli_data, cli_export, cli_model, cli_pipeline, cli_rl

    for module in (cli_pipeline, cli_data, cli_rl, cli_model, cli_export):
        module.add_verbs(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from capture.settings import ConfigError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for a usage error, 0 for --help
        return int(exc.code or 0)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from capture.lifecycle import Interrupted, sigterm_interrupts

    try:
        with sigterm_interrupts():
            return int(args.func(args) or 0)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        print("Nothing was run. Fix the key(s) above; `playmill config show` prints every key with its value.",
              file=sys.stderr)
        return 2
    except UsageError as exc:  # what the user wrote is wrong (a flag, a mapping file, a path): found before any work
        print(f"playmill {args.verb}: {exc}\nNothing was run.", file=sys.stderr)
        return 2
    except InputError as exc:  # the data cannot be used (a shard, a checkpoint, a CSV): the message names it
        print(f"playmill {args.verb}: error: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        print(f"playmill {args.verb}: stopped by {exc.signal_name}. "
              + (exc.kept or "Finished work is kept; rerun the same command to resume."), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"playmill {args.verb}: stopped by SIGINT. Finished work is kept; rerun the same command to resume.",
              file=sys.stderr)
        return 130
    except Exception as exc:  # the work ran and failed: say why, without a traceback (-v shows it)
        logging.getLogger("playmill").debug("failed", exc_info=True)
        print(f"playmill {args.verb}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
