"""How the command line presents itself: help that shows every default, and sub-commands whose
one-line summary is also the first line of their own help."""
from __future__ import annotations

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Descriptions keep their line breaks; an option's default is appended to its help unless the
    help already says it, or there is none to show (None, False of a flag, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False or action.default == []:
            return text
        return super()._get_help_string(action)


def add_command(sub: argparse._SubParsersAction, name: str, summary: str,
                details: str = "") -> argparse.ArgumentParser:
    """A sub-command: `summary` (one line) in the top-level list and atop its own help, then `details`."""
    description = f"{summary}\n\n{details.strip()}" if details else summary
    return sub.add_parser(name, help=summary, description=description, formatter_class=HelpFormatter)
