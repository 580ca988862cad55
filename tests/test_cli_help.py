"""The command line a newcomer meets: help on every option with its default, a one-line summary
per command, and one line on stderr when Numba compiles the kernels (first run only)."""
import argparse
import os
import subprocess
import sys

import numpy as np

from tasdsim.simulator.cli import build_parser
from tasdsim.simulator.jit_notice import MESSAGE


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_option_has_help_and_every_command_a_summary():
    commands = _commands()
    assert set(commands) == {"decompose", "search", "simulate", "trace", "dram", "sweep", "train", "tasd-vs-train",
                             "validate"}
    for name, parser in commands.items():
        assert parser.description and len(parser.description.split("\n")[0]) <= 70, name
        for action in parser._actions:
            assert action.help and action.help.strip(), f"{name} {action.option_strings or action.dest}"
        assert "(default: None)" not in parser.format_help()


def test_defaults_are_shown():
    text = _commands()["simulate"].format_help()
    assert "(default: real)" in text and "(default: none)" in text and "(default: 45nm)" in text
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "(default: 30)" in _commands()["train"].format_help()


def test_top_level_help_speaks_to_users():
    text = build_parser().format_help()
    for needle in ("cycle by cycle", "vegeta-m4", "resnet50", "examples:", "tasdsim simulate --hw", "validate"):
        assert needle in text


def test_first_run_says_it_compiles_later_runs_do_not(tmp_path):
    """A fresh Numba cache directory is a first run: one line on stderr; the second run loads the
    kernels from that cache and says nothing."""
    np.save(tmp_path / "w.npy", np.arange(32, dtype=np.float32).reshape(4, 8))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "tasdsim.simulator.cli", "decompose", "w.npy", "--series", "2:4"]
    first = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert first.stderr.splitlines() == [MESSAGE]
    again = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert again.stderr == "" and again.stdout == first.stdout
