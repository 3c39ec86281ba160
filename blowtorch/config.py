"""Reading YAML config files, and read-only access to the resolved config.

Merging the files, scopes, named configs and command-line updates is sacred's job; this module
only reads files with clear errors and hands out the result.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from blowtorch.errors import ConfigError, ConfigKeyError, MissingFileError

PathLike = str | Path


def load_config_file(path: PathLike) -> dict[str, Any]:
    """One YAML config file as a dict; errors name the file and, for syntax errors, the line."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(
            f"config file '{path}' does not exist (looked in {path.resolve().parent}); check the path in "
            f"Run(config_files=[...]), relative paths are relative to the working directory"
        )
    import yaml  # here, not at the top: `import blowtorch` stays fast (yaml is needed once a Run reads files)

    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"config file '{path}' is not valid YAML{where}: {problem}") from error
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(
            f"config file '{path}' holds a {type(content).__name__} at the top level; it must hold a mapping "
            f"of config keys, e.g. 'model:\\n  num_layers: 2'"
        )
    _check_keys(content, path, [])
    return content


def _check_keys(mapping: Mapping[Any, Any], path: Path, parents: list[str]) -> None:
    for key, value in mapping.items():
        dotted = ".".join([*parents, str(key)])
        if not isinstance(key, str):
            raise ConfigError(f"config file '{path}': key {dotted!r} is a {type(key).__name__}; config keys must be strings")
        if "." in key or key.startswith("$") or "=" in key:
            raise ConfigError(
                f"config file '{path}': key {dotted!r} contains '.', '=' or starts with '$', which sacred (and "
                f"MongoDB) cannot store; nest it instead ('a:\\n  b: ...' for 'a.b')"
            )
        if isinstance(value, Mapping):
            _check_keys(value, path, [*parents, key])


def load_config_files(paths: Sequence[PathLike] | None) -> list[dict[str, Any]]:
    if paths is None:
        return []
    if isinstance(paths, (str, Path)):
        raise ConfigError(f"config_files must be a list of paths, got the single path {str(paths)!r}; write [{str(paths)!r}]")
    return [load_config_file(path) for path in paths]


def merge_configs(configs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge config dicts in order: later ones win, nested mappings are merged key by key."""
    merged: dict[str, Any] = {}
    for config in configs:
        _merge_into(merged, config)
    return merged


def _merge_into(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = copy.deepcopy(dict(value)) if isinstance(value, Mapping) else copy.deepcopy(value)


class ConfigDict(dict):  # type: ignore[type-arg]
    """A read-only dict of resolved config values whose missing keys say which keys exist."""

    def __init__(self, data: Mapping[str, Any], path: str = "") -> None:
        super().__init__({k: _freeze(v, _join(path, k)) for k, v in data.items()})
        self._path = path

    def __getitem__(self, key: str) -> Any:
        return _copy_lists(super().__getitem__(key))

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default  # noqa: SIM401  (dict.get would skip __getitem__'s copy)

    def __missing__(self, key: str) -> NoReturn:
        where = f"under '{self._path}'" if self._path else "at the top level"
        raise ConfigKeyError(
            f"config key '{_join(self._path, key)}' does not exist; the keys {where} are {sorted(self)}. "
            f"Add it to a config file or fix the name"
        )

    def lookup(self, dotted: str) -> Any:
        """``lookup("a.b")`` is ``self["a"]["b"]``."""
        node: Any = self
        for index, part in enumerate(dotted.split(".")):
            if not isinstance(node, ConfigDict):
                parent = ".".join(dotted.split(".")[:index])
                raise ConfigKeyError(f"config key '{dotted}' does not exist: '{parent}' is {node!r}, not a mapping")
            node = node[part]
        return node

    def to_dict(self) -> dict[str, Any]:
        """A plain, mutable deep copy."""
        return {k: _thaw(v) for k, v in self.items()}

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ConfigError(
            "the resolved config is read-only, so that what runs is what sacred records; change values in a "
            "config file, a config scope or on the command line ('with key=value'), or copy it with .to_dict()"
        )

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = __ior__ = _read_only


def _freeze(value: Any, path: str) -> Any:
    if isinstance(value, Mapping):
        return ConfigDict(value, path)
    if isinstance(value, (list, tuple)):
        return [_freeze(item, path) for item in value]
    return value


def _copy_lists(value: Any) -> Any:
    """Lists are handed out as copies; nested ConfigDicts are read-only and can be shared."""
    if isinstance(value, list):
        return [_copy_lists(item) for item in value]
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, ConfigDict):
        return value.to_dict()
    if isinstance(value, list):
        return [_thaw(item) for item in value]
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else str(key)


def config_differences(before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every difference between two nested configs, as ``key: old -> new`` lines."""
    lines: list[str] = []
    for key in sorted(set(before) | set(after)):
        dotted = f"{prefix}{key}"
        if key not in after:
            lines.append(f"{dotted}: {before[key]!r} -> (removed)")
        elif key not in before:
            lines.append(f"{dotted}: (new) -> {after[key]!r}")
        elif isinstance(before[key], Mapping) and isinstance(after[key], Mapping):
            lines.extend(config_differences(before[key], after[key], f"{dotted}."))
        elif before[key] != after[key]:
            lines.append(f"{dotted}: {before[key]!r} -> {after[key]!r}")
    return lines
