"""Load callcenterd.yaml plus its conf.d/ overrides, validate, report every error.

``callcenterd.yaml`` is read first, then every ``conf.d/*.yaml`` beside it
in sorted name order.  Mappings deep-merge; lists and scalars replace.
Each value remembers the file and line it came from, so an error reads::

    conf.d/10-sales.yaml:12: queues.sales.ring_time: Input should be a valid number

All problems (YAML, schema, cross references) are collected and raised at
once as :class:`ConfigError`.  A file that cannot be read or parsed does not
hide the others: the files that parsed are still merged and validated, and
their errors are reported with the parse errors -- except the ones its
absence may cause (a missing key, a reference to something it defined).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from callcenterd.config.errors import ConfigError
from callcenterd.config.models import Config
from callcenterd.config.yaml_loader import KeyPath, Origin, YamlError, load_yaml

__all__ = ["load_config", "config_from_mapping", "check_references", "merge", "read_layers"]

CONF_D = "conf.d"


# ----------------------------------------------------------------- reading
def read_layers(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[KeyPath, Origin]]:
    """Read the main file and conf.d/*.yaml; return merged (data, origins).

    File names in origins are shown as given: ``-c config/callcenterd.yaml``
    yields ``config/conf.d/10-sales.yaml``.  Raises ConfigError listing every
    unreadable or malformed file.
    """
    data, origins, errors = _read_layers(path)
    if errors:
        raise ConfigError(errors)
    return data, origins


def _read_layers(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Any], dict[KeyPath, Origin], list[str]]:
    """read_layers without raising: (merge of the files that parsed, origins, file errors)."""
    main = Path(path)
    files = [main]
    conf_d = main.parent / CONF_D
    if conf_d.is_dir():
        files += sorted(p for p in conf_d.glob("*.yaml") if p.is_file())

    data: dict[str, Any] = {}
    origins: dict[KeyPath, Origin] = {(): Origin(str(main), 1)}
    errors: list[str] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            errors.append(f"{file}: cannot read: {reason}")
            continue
        try:
            layer, layer_origins = load_yaml(text, str(file))
        except YamlError as exc:
            errors.append(str(exc))
            continue
        if layer is None:  # an empty file (or only comments) changes nothing
            continue
        if not isinstance(layer, dict):
            errors.append(f"{file}:1: the top level must be a mapping of sections")
            continue
        try:
            layer = _unshare(layer, set())
        except ValueError as exc:
            errors.append(f"{file}:1: {exc}")
            continue
        merge(data, origins, layer, layer_origins)
    return data, origins, errors


def _unshare(value: Any, active: set[int]) -> Any:
    """Copy the tree so that YAML aliases (``*defaults``) no longer share one
    dict: merging conf.d into one queue must not change its siblings."""
    if isinstance(value, (dict, list)):
        if id(value) in active:
            raise ValueError("recursive YAML alias")
        active.add(id(value))
        if isinstance(value, dict):
            copied: Any = {k: _unshare(v, active) for k, v in value.items()}
        else:
            copied = [_unshare(v, active) for v in value]
        active.discard(id(value))
        return copied
    return value


def merge(
    base: dict[str, Any],
    base_origins: dict[KeyPath, Origin],
    layer: Mapping[str, Any],
    layer_origins: Mapping[KeyPath, Origin],
    path: KeyPath = (),
) -> None:
    """Merge ``layer`` into ``base`` in place: mappings deep-merge, the rest
    replaces.  Origins follow: a replaced subtree takes the layer's origins."""
    for key, value in layer.items():
        child = path + (key,)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            if child in layer_origins:
                base_origins[child] = layer_origins[child]
            merge(base[key], base_origins, value, layer_origins, child)
            continue
        base[key] = value
        depth = len(child)
        for stale in [k for k in base_origins if k[:depth] == child]:
            del base_origins[stale]
        for fresh, origin in layer_origins.items():
            if fresh[:depth] == child:
                base_origins[fresh] = origin


# ----------------------------------------------------------------- checking
def check_references(data: Mapping[str, Any]) -> list[tuple[KeyPath, str]]:
    """Cross references in the raw (merged) data: (key path, problem) pairs.

    Works on unvalidated data and skips what has the wrong shape: the schema
    reports that, and both kinds of errors come out together.
    """
    problems: list[tuple[KeyPath, str]] = []
    pbx = _mapping(data.get("pbx"))
    queues = _mapping(data.get("queues"))
    agents = _mapping(data.get("agents"))

    agent_skills: set[str] = set()
    for agent in agents.values():
        agent_skills.update(_mapping(_mapping(agent).get("skills")))

    for qname, queue in queues.items():
        queue = _mapping(queue)
        overflow = _mapping(queue.get("overflow"))
        target = overflow.get("queue")
        if isinstance(target, str):
            if target not in queues:
                problems.append(
                    ((("queues", qname, "overflow", "queue")), f"overflow to unknown queue {target!r}")
                )
            elif target == qname:
                problems.append(((("queues", qname, "overflow", "queue")), "a queue cannot overflow to itself"))
        for skill in _mapping(queue.get("skills")):
            if skill not in agent_skills:
                problems.append(
                    (("queues", qname, "skills", skill), f"no agent has the required skill {skill!r}")
                )

    for agent_id, agent in agents.items():
        agent = _mapping(agent)
        agent_queues = agent.get("queues")
        if isinstance(agent_queues, list):
            for index, qname in enumerate(agent_queues):
                if isinstance(qname, str) and qname not in queues:
                    problems.append((("agents", agent_id, "queues", index), f"unknown queue {qname!r}"))
        node = agent.get("node")
        if isinstance(node, str):
            if pbx and node not in pbx:
                problems.append((("agents", agent_id, "node"), f"unknown pbx node {node!r}"))
        elif node is None and len(pbx) > 1:
            problems.append(
                (("agents", agent_id), f"node is required when there are several pbx nodes ({', '.join(sorted(pbx))})")
            )
    return problems


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


# ----------------------------------------------------------------- building
def config_from_mapping(
    data: Mapping[str, Any], origins: Mapping[KeyPath, Origin] | None = None,
    *, incomplete: bool = False,
) -> Config:
    """Validate merged data into a Config, or raise ConfigError with every problem.

    ``incomplete``: some file could not be read, so a missing key or an
    unknown reference may well be in it; those are not reported.
    """
    origins = origins or {}
    located: list[tuple[KeyPath, str]] = [] if incomplete else list(check_references(data))
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        config = None
        for error in exc.errors(include_url=False, include_input=False, include_context=False):
            if incomplete and error["type"] == "missing":
                continue
            msg = error["msg"]
            if error["type"] == "value_error":
                msg = msg.removeprefix("Value error, ")
            located.append((_data_path(data, error["loc"]), msg))
    if located:
        raise ConfigError(_render(located, origins))
    if config is None:  # incomplete: every problem was one the unread file may explain
        raise ConfigError([])
    return config


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, merge and validate a configuration; raise ConfigError on any problem."""
    data, origins, errors = _read_layers(path)
    if not errors:
        return config_from_mapping(data, origins)
    try:
        config_from_mapping(data, origins, incomplete=True)
    except ConfigError as exc:
        errors += exc.messages
    raise ConfigError(errors)


def _data_path(data: Any, loc: tuple[Any, ...]) -> KeyPath:
    """Drop pydantic's own loc elements (union tags, '[key]', validator names)
    by following the loc through the actual data."""
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif part == "[key]" or not isinstance(node, (dict, list)):
            continue
        elif isinstance(node, dict) and isinstance(part, str) and index == len(loc) - 1:
            path.append(part)  # a missing field: name it (its parent gives the line)
    return tuple(path)


def _render(located: list[tuple[KeyPath, str]], origins: Mapping[KeyPath, Origin]) -> list[str]:
    lines: list[tuple[tuple[str, int], str]] = []
    for path, msg in located:
        origin = _nearest_origin(path, origins)
        key = _dotted(path)
        sort_key = (origin.file, origin.line) if origin else ("", 0)
        where = f"{origin}: " if origin else ""
        lines.append((sort_key, f"{where}{key}: {msg}"))
    lines.sort(key=lambda item: item[0])
    seen: set[str] = set()
    out = []
    for _, line in lines:
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out


def _dotted(path: KeyPath) -> str:
    """("agents", "1001", "queues", 1) -> "agents.1001.queues[1]"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _nearest_origin(path: KeyPath, origins: Mapping[KeyPath, Origin]) -> Origin | None:
    for end in range(len(path), -1, -1):
        origin = origins.get(path[:end])
        if origin is not None:
            return origin
    return None
