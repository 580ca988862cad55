"""What every layer of tasdsim shares: the user-facing error, the strict YAML reader and the
lookup of bundled files (presets) by name or path. A leaf: it imports nothing of tasdsim."""
from __future__ import annotations

import importlib.resources
import math
import os
import re
from pathlib import Path
from typing import Any

import yaml


class TasdsimError(Exception):
    """A user-facing error. Its message names the file, line or key and what is wrong;
    the CLI prints it as one line on stderr and exits non-zero."""


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, reads unquoted N:M (1:4, 4:8) as strings and
    numbers in every spelling (1e5, 1.0e5, .5E-3) as floats.

    YAML 1.1 reads 1:4 as a base-60 integer (64), so patterns would silently become numbers, and
    reads 1e5 as a string, so a valid number would be refused.
    """

    def resolve(self, kind, value, implicit):  # noqa: ANN001 - PyYAML's signature
        tag = super().resolve(kind, value, implicit)
        if kind is yaml.ScalarNode and ":" in value and tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
            return "tag:yaml.org,2002:str"
        return tag

    def construct_mapping(self, node, deep=False):  # noqa: ANN001
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep)


StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?([0-9][0-9_]*(\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str, label: str) -> Any:
    """Parse YAML text; errors name `label`, the line and the column."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = " ".join(str(getattr(err, "problem", None) or err).split())
        raise TasdsimError(f"{label}: {where}not valid YAML: {reason}") from None
    except ValueError as err:  # an integer of more digits than Python converts
        raise TasdsimError(f"{label}: not valid YAML: {err}") from None
    except RecursionError:
        raise TasdsimError(f"{label}: not valid YAML: nested too deeply") from None


def integer(value: Any) -> int | None:
    """`value` as an int when it is one (an integral float such as 1e5 counts), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def check_range(value: Any, low: int | float, high: int | float, what: str) -> int:
    """An integer in [low, high] (the input contract's limit for `what`), else TasdsimError."""
    number = integer(value)
    if number is None or not low <= number <= high:
        raise TasdsimError(f"{what}: must be an integer from {low:,} to {high:,}, got {value!r}")
    return number


def read_yaml(path: Path, label: str) -> Any:
    """Read and parse a YAML file; a file that cannot be read is an error naming `label`."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise TasdsimError(f"{label}: cannot read: {getattr(err, 'strerror', None) or err}") from None
    return load_yaml(text, label)


def bundled_files(kind: str) -> dict[str, Path]:
    """The bundled `configs/<kind>/*.yaml` files of this installation, by name (file stem).

    Read from the `tasdsim.configs` package, so folders in the working directory never shadow them.
    """
    directory = Path(str(importlib.resources.files("tasdsim.configs").joinpath(kind)))
    if not directory.is_dir():
        return {}
    return {file.stem: file for file in sorted(directory.glob("*.yaml"))}


def is_path(name_or_path: str | os.PathLike) -> bool:
    """True when a preset argument names a file (ends in .yaml/.yml or holds a path separator)."""
    text = os.fspath(name_or_path)
    return text.endswith((".yaml", ".yml")) or "/" in text or os.sep in text


def find_preset(kind: str, name_or_path: str | os.PathLike, what: str) -> tuple[Path, str]:
    """Resolve a bundled preset of `configs/<kind>/` by name, or a YAML file by path.

    Returns the file and the label errors use (`<kind>/<name>.yaml` or the path as given). `what`
    names the kind of file in messages ("hardware preset", "workload", ...).
    """
    text = os.fspath(name_or_path)
    if is_path(text):
        path = Path(text)
        if not path.is_file():
            raise TasdsimError(f"{text}: no such {what} file")
        return path, text
    presets = bundled_files(kind)
    if text not in presets:
        raise TasdsimError(f"unknown {what} {text!r}; bundled: {', '.join(sorted(presets))} "
                           "(or give the path of a .yaml file)")
    return presets[text], f"{kind}/{text}.yaml"


def read_preset(kind: str, name_or_path: str | os.PathLike, what: str) -> tuple[Any, str]:
    """The parsed YAML of a preset (see `find_preset`) and its label for error messages."""
    path, label = find_preset(kind, name_or_path, what)
    return read_yaml(path, label), label
