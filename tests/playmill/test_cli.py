"""One CLI style: every verb declared the same way, its help ending with an example, every verb taking the
config and --set; the exit-code rule; `config show|schema`."""

from __future__ import annotations

import argparse

from playmill.cli import build_parser, main


def leaf_verbs(parser: argparse.ArgumentParser, path=()):
    """(path, parser) of every verb that does something (the leaves of the sub-command tree)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, p in subs[0].choices.items():
        yield from leaf_verbs(p, path + (name,))


def all_verbs(parser, path=()):
    yield path, parser
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, p in a.choices.items():
                yield from all_verbs(p, path + (name,))


def test_every_verb_takes_the_config_and_set_and_its_help_ends_with_an_example(capsys):
    leaves = list(leaf_verbs(build_parser()))
    assert len(leaves) >= 20
    names = {" ".join(p) for p, _ in leaves}
    assert {"run", "config show", "collect", "curate", "train", "distill dmd", "rl train", "rl eval", "generate",
            "import sekai", "import generic", "import gta", "import unreal", "validate", "inspect",
            "sandbox preview", "sandbox serve", "encode-latents"} <= names
    for path, p in leaves:
        opts = {o for a in p._actions for o in a.option_strings}
        if path != ("config", "schema"):
            assert "--set" in opts, path
            assert any(a.dest == "config" for a in p._actions), path
    for path, p in all_verbs(build_parser()):
        if not path:
            continue
        assert main([*path, "--help"]) == 0
        text = capsys.readouterr().out
        assert text.startswith("usage: playmill " + " ".join(path)), path
        tail = text.rstrip().split("\n\n")[-1]
        assert tail.startswith("example:\n  playmill ") or tail.startswith("example:\n  torchrun"), (path, tail)


def test_top_level_help_lists_every_verb_and_the_exit_codes(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in ("run", "config", "collect", "curate", "inspect", "import", "validate", "sandbox", "rl", "train",
                 "encode-latents", "generate", "distill"):
        assert f"\n    {verb}" in out
    assert "exit codes: 0 done; 1 the data is unusable or some items failed" in out
    assert "2 what you wrote is wrong: a\nflag, a config key, a mapping file, a path that does not exist" in out


def test_exit_code_rule(tmp_path, monkeypatch, capsys):
    """0 done; 1 the data is unusable or some items failed (each reported); 2 what the user wrote is wrong (nothing
    run). The class of the error decides: capture.errors.InputError 1, its subclass UsageError 2."""
    from capture.errors import InputError, UsageError
    from capture.settings import ConfigError

    assert issubclass(ConfigError, UsageError) and issubclass(UsageError, InputError)
    monkeypatch.chdir(tmp_path)
    assert main(["config", "show"]) == 0  # done
    capsys.readouterr()
    assert main(["validate", str(tmp_path / "missing")]) == 1  # the work ran; the item is reported
    out = capsys.readouterr().out
    assert "INVALID" in out and "missing" in out
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "manifest.json").write_text("[]")
    assert main(["inspect", str(tmp_path / "shards"), "--no-report"]) == 1  # unusable data (ShardsError)
    err = capsys.readouterr().err
    assert "playmill inspect: error: " in err and "manifest.json: must be a JSON object" in err
    assert main(["run", "--set", "collect.workers=0"]) == 2  # config error
    assert main(["encode-latents", str(tmp_path / "nowhere"), "--vae", "vae.pth"]) == 2  # a path that does not exist
    assert "nowhere: no such shards folder" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2  # usage error (argparse)
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_a_stage_that_fails_is_reported_in_the_table_and_the_next_ones_do_not_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipeline.yaml").write_text("stages: [curate, generate]\nworkdir: w\n")  # nothing was collected
    assert main(["run", "--no-progress"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["stage", "status"]
    assert lines[1].split()[:2] == ["curate", "failed"] and lines[2].split()[:3] == ["generate", "not", "run"]
    assert lines[3].startswith("failed (fix the cause and rerun the same command") and lines[4].startswith("  curate: ")
