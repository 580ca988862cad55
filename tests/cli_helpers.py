"""Running the CLI in-process from tests, and the one-line error contract."""
from tasdsim.simulator.cli import main


def cli(capsys, *argv):
    """Run `tasdsim ARGV...`; returns (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    """Bad input: exit 2, exactly one line on stderr containing every needle, no traceback."""
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
