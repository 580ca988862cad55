"""Reading YAML the strict way every config, workload, suite and sweep file is read."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from traces.errors import TasdsimError


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and reads unquoted N:M (1:4, 4:8) as strings.

    YAML 1.1 reads 1:4 as a base-60 integer (64); patterns would silently become numbers.
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


def load_yaml(text: str, label: str) -> Any:
    """Parse YAML text; errors name `label`, the line and the column."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise TasdsimError(f"{label}: {where}not valid YAML: {getattr(err, 'problem', None) or err}") from None


def read_yaml(path: Path, label: str) -> Any:
    """Read and parse a YAML file; a file that cannot be read is an error naming `label`."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise TasdsimError(f"{label}: cannot read: {getattr(err, 'strerror', None) or err}") from None
    return load_yaml(text, label)
