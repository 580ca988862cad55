"""README's examples are run and diffed, so the documentation cannot drift from the program
(tests/readme_examples.py says how; `python tests/readme_examples.py --update` rewrites them)."""
from __future__ import annotations

import pytest

from readme_examples import README, difference, find_examples, run_example

LINES = README.read_text(encoding="utf-8").split("\n")
EXAMPLES = find_examples(LINES)


def test_every_command_shown_with_its_output_is_marked():
    """A code block whose first line is `$ COMMAND` shows output: it must be a marked example."""
    marked = {e.start for e in EXAMPLES}
    shown = [i for i, line in enumerate(LINES)
             if line.startswith("    $ ") and (i == 0 or not LINES[i - 1].startswith("    "))]
    assert [f"README.md:{i + 1}" for i in shown if i not in marked] == []
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("example", [pytest.param(e, id=e.name, marks=[pytest.mark.slow] if e.slow else [])
                                     for e in EXAMPLES])
def test_readme_example(example):
    diff = difference(example, run_example(example))
    assert not diff, ("README differs from the program; if the program is right, run "
                      "`python tests/readme_examples.py --update`\n" + diff)
