"""A strict YAML loader for callcenterd configuration.

YAML 1.1 (what PyYAML implements) turns far too many plain scalars into
something else: ``08:30`` is the sexagesimal int 510, ``NO`` (Norway, or a
``join_empty`` choice) is False, ``0123`` is octal 83, ``1_000`` is 1000.
In a telephony config that silently breaks business hours, extensions and
PINs.  This loader keeps its own, much smaller set of implicit resolvers:

* ``true`` / ``false`` in any case are booleans (and nothing else is);
* ``0`` and plain decimal integers without a leading zero are ints;
* ordinary decimal floats (``1.5``, ``-.5``, ``2e3``) are floats;
* ``null``, ``~`` and the empty value are None;
* everything else is a string.

Mapping keys are always strings (an agent id ``1001:`` is ``"1001"``),
duplicate keys are refused with file:line, and every value's origin is
recorded as a key path -> (file, line) map taken from the composed nodes.

Aliases (``*defaults``) are fine, but a document whose aliases expand to
more than ``MAX_ALIAS_EXPANSION`` values is refused before anything walks
the expanded tree: nine levels of nine aliases ("billion laughs") is a few
hundred bytes of YAML and 387 million values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["Origin", "YamlError", "StrictLoader", "load_yaml", "KeyPath"]

KeyPath = tuple[str | int, ...]

#: Values reached a second time through an alias, per document.  A config
#: that shares defaults between thousands of agents stays far below it.
MAX_ALIAS_EXPANSION = 100_000


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a configuration value was written: file as shown to the admin, 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class YamlError(Exception):
    """A file is not valid YAML for us.  ``str()`` is ``file:line: problem``.

    The message never quotes the offending line: it may hold a secret.
    """

    def __init__(self, origin: Origin, problem: str) -> None:
        super().__init__(f"{origin}: {problem}")
        self.origin = origin
        self.problem = problem


class StrictLoader(yaml.SafeLoader):
    """SafeLoader with callcenterd's implicit resolvers (see module docstring)."""

    # Our own table: SafeLoader's class attribute is shared with every other
    # loader, so we never mutate it (add_implicit_resolver copies on first use).
    yaml_implicit_resolvers: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[str, Any]:
        """Mappings with string keys only, duplicates refused."""
        if not isinstance(node, MappingNode):  # pragma: no cover - composer guarantees it
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping node, but found {node.id}", node.start_mark
            )
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _key_of(key_node, self.name)
            if key in mapping:
                raise YamlError(_origin(self.name, key_node), f"duplicate key {key!r} in mapping")
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _key_of(key_node: Node, file: str) -> str:
    if not isinstance(key_node, ScalarNode):
        raise YamlError(_origin(file, key_node), "mapping keys must be plain scalars")
    return str(key_node.value)


def _origin(file: str, node: Node) -> Origin:
    return Origin(file, node.start_mark.line + 1)


# --- implicit resolvers -----------------------------------------------------
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?i:true|false)$"),
    list("tTfF"),
)
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:0|[-+]?[1-9][0-9]*)$"),
    list("-+0123456789"),
)
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?[0-9]+[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null",
    re.compile(r"^(?:~|null|Null|NULL|)$"),
    ["~", "n", "N", ""],
)


def _construct_bool(loader: StrictLoader, node: ScalarNode) -> bool:
    # SafeConstructor's table knows yes/no/on/off; we only get here for true/false,
    # but an explicit !!bool tag could carry anything, so decide ourselves.
    value = str(loader.construct_scalar(node)).lower()
    if value not in ("true", "false"):
        raise YamlError(_origin(loader.name, node), "a !!bool must be true or false")
    return value == "true"


def _construct_int(loader: StrictLoader, node: ScalarNode) -> int:
    value = str(loader.construct_scalar(node))
    if not re.fullmatch(r"0|[-+]?[1-9][0-9]*", value):
        raise YamlError(_origin(loader.name, node), "a !!int must be a plain decimal integer")
    return int(value)


StrictLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
StrictLoader.add_constructor(
    "tag:yaml.org,2002:map", lambda loader, node: loader.construct_mapping(node, deep=True)
)


# --- loading with origins ---------------------------------------------------
def load_yaml(text: str, file: str) -> tuple[Any, dict[KeyPath, Origin]]:
    """Parse one document; return (data, origins).

    ``origins`` maps every key path (``("queues", "sales", "ring_time")``,
    list items by index) to where its value's key (or item) was written.
    The root path ``()`` maps to line 1.  Raises :class:`YamlError`.
    """
    loader = StrictLoader(text)
    loader.name = file  # marks carry this name instead of "<unicode string>"
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {(): Origin(file, 1)}
        origins: dict[KeyPath, Origin] = {(): Origin(file, 1)}
        _check_alias_expansion(root, file)
        _collect_origins(root, (), file, origins, set())
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        # Only the problem text: str(exc) embeds a snippet of the line.
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlError(Origin(file, line), problem) from None
    except yaml.YAMLError as exc:
        raise YamlError(Origin(file, 1), type(exc).__name__) from None
    finally:
        loader.dispose()
    return data, origins


def _check_alias_expansion(root: Node, file: str) -> None:
    """Refuse an alias bomb: count the values the aliases would expand to,
    in time linear in the number of distinct nodes (sizes are memoised)."""
    sizes: dict[int, int] = {}  # node id -> values in its expanded subtree
    distinct = 0
    # Iterative post-order walk of the node graph (no recursion, no expansion).
    stack: list[tuple[Node, bool]] = [(root, False)]
    active: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            size = 1 + sum(sizes.get(id(child), 0) for child in _children(node))
            sizes[key] = size
            if size - distinct > MAX_ALIAS_EXPANSION:
                raise YamlError(
                    _origin(file, node),
                    f"aliases expand to more than {MAX_ALIAS_EXPANSION} values (a YAML alias bomb?)",
                )
            continue
        if key in sizes or key in active:  # already counted, or a recursive alias
            continue
        active.add(key)
        distinct += 1
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [value for _, value in node.value]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _collect_origins(
    node: Node, path: KeyPath, file: str, out: dict[KeyPath, Origin], active: set[int]
) -> None:
    if id(node) in active:  # a recursive alias (&a [*a]); the constructor copes, we stop
        return
    active.add(id(node))
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            key = _key_of(key_node, file)
            child = path + (key,)
            out[child] = _origin(file, key_node)
            _collect_origins(value_node, child, file, out, active)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            child = path + (index,)
            out[child] = _origin(file, item)
            _collect_origins(item, child, file, out, active)
    active.discard(id(node))
