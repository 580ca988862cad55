"""README's command examples: find them, run them, compare their output or rewrite it.

An example is the indented code block right after a line `<!-- example -->` (or
`<!-- example slow -->` for one that takes more than a few seconds). In the block, a line
`$ COMMAND` is run and the lines up to the next `$ ` line are what it prints on stdout:

    <!-- example -->
        $ tasdsim simulate --hw dense-ws-32x32 --gemm 100x70x50 --memory ideal
        hardware dense-ws-32x32: ...

Each example runs in a fresh empty directory, its commands in order (so a command may make a file
that the next one reads, seeded), through `bash -o pipefail -c`, with this Python's bin directory
first on PATH, so `tasdsim` and `python` are the ones under test. Every command must exit 0 and
print exactly the lines shown, numbers included. The one mask: a wall-clock time, a number
followed by " s" ("(0.052 s)", "simulator 9.5 s"), differs from run to run, so such numbers are
replaced by "<t>" on both sides before comparing.

    python tests/readme_examples.py            # run every example, show the differences
    python tests/readme_examples.py --update   # rewrite README's example outputs from the program
"""
from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
MARK = re.compile(r"^<!-- example( slow)? -->$")
INDENT = "    "
SECONDS = re.compile(r"\b\d+(?:\.\d+)? s\b")


@dataclass(frozen=True)
class Example:
    """One marked block: its README lines [start, end) and its (command, expected lines) steps."""

    start: int
    end: int
    slow: bool
    steps: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def name(self) -> str:
        return self.steps[-1][0][:70]


def find_examples(lines: list[str]) -> list[Example]:
    """Every marked block of README's lines."""
    examples = []
    for i, line in enumerate(lines):
        mark = MARK.match(line.strip())
        if not mark:
            continue
        start = i + 1
        while start < len(lines) and not lines[start].strip():
            start += 1
        end = start
        while end < len(lines) and (lines[end].startswith(INDENT) or
                                    (not lines[end].strip() and end + 1 < len(lines)
                                     and lines[end + 1].startswith(INDENT))):
            end += 1
        body = [line[len(INDENT):] for line in lines[start:end]]
        if not body or not body[0].startswith("$ "):
            raise ValueError(f"README.md:{i + 1}: an example block must start with a '$ ' command line")
        steps: list[tuple[str, list[str]]] = []
        for text in body:
            if text.startswith("$ "):
                steps.append((text[2:], []))
            else:
                steps[-1][1].append(text)
        examples.append(Example(start, end, bool(mark.group(1)), tuple((c, tuple(o)) for c, o in steps)))
    return examples


def run_command(command: str, cwd: str) -> list[str]:
    """The stdout lines of one command; a failing command raises with its stderr."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"$ {command}\nexit status {done.returncode}\n{done.stderr}")
    return done.stdout.rstrip("\n").split("\n") if done.stdout.strip() else []


def run_example(example: Example) -> list[tuple[str, list[str]]]:
    """Run an example's commands in order in a fresh directory: (command, stdout lines) each."""
    with tempfile.TemporaryDirectory(prefix="tasdsim-readme-") as cwd:
        return [(command, run_command(command, cwd)) for command, _ in example.steps]


def masked(lines: tuple[str, ...] | list[str]) -> list[str]:
    return [SECONDS.sub("<t> s", line) for line in lines]


def difference(example: Example, actual: list[tuple[str, list[str]]]) -> str:
    """A unified diff of README's text against the program's output ('' when they agree)."""
    diff = []
    for (command, expected), (_, got) in zip(example.steps, actual):
        diff += difflib.unified_diff(masked(expected), masked(got), f"README: $ {command}", "program", lineterm="")
    return "\n".join(diff)


def block(actual: list[tuple[str, list[str]]]) -> list[str]:
    """README lines of an example block holding these outputs."""
    out = []
    for command, got in actual:
        out.append(INDENT + "$ " + command)
        out += [INDENT + line if line else "" for line in got]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="rewrite README's example outputs from the program")
    args = parser.parse_args(argv)
    lines = README.read_text(encoding="utf-8").split("\n")
    examples = find_examples(lines)
    failed = 0
    for example in reversed(examples):  # from the end, so earlier line numbers stay valid
        actual = run_example(example)
        diff = difference(example, actual)
        if args.update:
            lines[example.start:example.end] = block(actual)
        elif diff:
            print(diff)
            failed += 1
        print(f"{'changed' if diff else 'same'}: README.md:{example.start + 1}: $ {example.name}", file=sys.stderr)
    if args.update:
        README.write_text("\n".join(lines), encoding="utf-8")
        print(f"{README}: {len(examples)} examples rewritten", file=sys.stderr)
        return 0
    print(f"{len(examples) - failed} of {len(examples)} examples agree", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
