"""Load a YAML flow graph into a Graph, keeping the source line of everything.

Format::

    variables: {rate: 1e6}
    blocks:
      src:  {type: signal_source, rate: ${rate}, freq: 1e3}
      gain: {type: multiply_const, k: 0.5}
      snk:  {type: null_sink}
    connections:
      - src -> gain
      - gain.out -> snk.in
      - {src: gain, dst: snk, buffer: 65536}    # per-connection buffer (items)

``options: {fuse: false}`` runs every block in a task of its own (see ``fusion.py``), as
``fuse: false`` on one block does for that block; ``options: {workers: N}`` sizes the
worker pool (0: a thread per task). ``replicas: N`` on a stateless block runs N copies of
it side by side (``replicas.py``); ``fragment: NAME`` places a block in a part of the graph
that ``cvstream run --ray`` deploys on its own (``fragments.py``; a ``fragments:`` section
says what each part asks of Ray). Only YAML literals are read (safe
loading); ``${name}`` substitutes a variable: alone, the value keeps its type; inside a
longer string it is formatted into it.
"""
from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import CvstreamError, GraphError, GraphErrors, ParamError
from .graph import MAX_ERRORS, Graph, replicas_refused
from .registry import lookup

TOP_KEYS = ("imports", "options", "variables", "fragments", "blocks", "connections")
OPTIONS = {"fuse": bool, "workers": int}  # graph-wide run options
VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: YAML nodes a graph may expand to, aliases counted each time they are used: a flow graph
#: has hundreds; an alias bomb has billions
MAX_NODES = 100_000
FRAGMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: what a fragment may ask of Ray: CPUs, memory (bytes), GPUs, node labels it must run on
FRAGMENT_KEYS = {"cpus": (int, float), "memory": (int, float), "gpus": (int, float),
                 "labels": dict}


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _value(node: yaml.Node, source: str = "<graph>") -> Any:
    try:
        return yaml.constructor.SafeConstructor().construct_document(node)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise GraphError(f"YAML: {problem}", source, _line(node)) from None


def _check_size(root: yaml.Node, source: str) -> None:
    """Refuse documents that expand to more than MAX_NODES nodes (alias bombs)."""
    count, stack = 0, [root]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise GraphError(f"the flow graph expands to more than {MAX_NODES} YAML nodes "
                             "(aliases repeated into a bomb?)", source, _line(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))


def _pairs(node: yaml.Node, what: str, source: str) -> list[tuple[str, yaml.Node, int]]:
    if not isinstance(node, yaml.MappingNode):
        raise GraphError(f"'{what}' must be a mapping", source, _line(node))
    out, seen = [], set()
    for key_node, value_node in node.value:
        key = _value(key_node, source)
        if not isinstance(key, str):
            raise GraphError(f"key {key!r} in '{what}' must be a string", source, _line(key_node))
        if key in seen:
            raise GraphError(f"'{key}' appears twice in '{what}'", source, _line(key_node))
        seen.add(key)
        out.append((key, value_node, _line(key_node)))
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["rate=2e6", "src.freq=1e3"]`` -> values parsed as YAML literals."""
    out = {}
    for item in items or []:
        key, eq, text = item.partition("=")
        if not eq or not key.strip():
            raise CvstreamError(f"--set '{item}': expected NAME=VALUE or BLOCK.PARAM=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = text
    return out


def load_graph(path: str, overrides: dict[str, Any] | None = None) -> Graph:
    """Read and build (not validate) the graph in ``path``; raises GraphError(s)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise GraphError(f"cannot read flow graph: {exc.strerror}", path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise GraphError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); a flow graph is "
                         "a YAML text file", path, line) from None
    return load_graph_text(text, path, overrides)


def load_graph_text(text: str, source: str = "<graph>",
                    overrides: dict[str, Any] | None = None) -> Graph:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise GraphError(f"YAML syntax error: {exc.problem or exc}", source, line) from None
    except yaml.reader.ReaderError as exc:   # a character YAML does not allow (NUL...)
        line = text.count("\n", 0, exc.position) + 1
        what = f"#x{exc.character:04x}" if exc.encoding == "unicode" else \
            f"byte #x{exc.character:02x}"
        raise GraphError(f"YAML error: character {what} is not allowed ({exc.reason}); a "
                         "flow graph is a YAML text file", source, line) from None
    except yaml.YAMLError as exc:
        raise GraphError("YAML error: " + " ".join(str(exc).split()), source) from None
    if root is None:
        raise GraphError("the flow graph is empty", source)
    _check_size(root, source)
    sections = {k: (v, line) for k, v, line in _pairs(root, "flow graph", source)}
    for key, (_, line) in sections.items():
        if key not in TOP_KEYS:
            raise GraphError(f"unknown section '{key}' (sections: {', '.join(TOP_KEYS)})",
                             source, line)
    if "imports" in sections:
        node = sections["imports"][0]
        names = _value(node, source)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise GraphError("'imports' is a list of module names or .py files", source,
                             _line(node))
        for name in names:
            import_blocks(name, source, _line(node))
    overrides = dict(overrides or {})
    variables = _variables(sections, source, overrides)
    graph = Graph(source)
    errors: list[GraphError] = []
    if "options" in sections:
        _options(graph, sections["options"][0], source)
    if "fragments" in sections:
        _fragments(graph, sections["fragments"][0], source)
    block_params = _block_overrides(overrides, sections, source)
    if "blocks" not in sections:
        raise GraphError("the flow graph has no 'blocks' section", source)
    failed: set[str] = set()
    for name, node, line in _pairs(sections["blocks"][0], "blocks", source):
        try:
            _add_block(graph, name, node, line, variables, block_params.get(name, {}), source)
        except GraphError as exc:
            errors.append(exc)
            failed.add(name)
    conns = sections.get("connections")
    partial: set[str] = set()
    if conns is not None:
        partial = _add_connections(graph, conns[0], variables, source, errors, failed)
    if errors:  # what the rest of the graph gets wrong too, in the same report
        try:
            graph.validate(partial=partial)
        except GraphErrors as more:
            errors += more.errors
        raise GraphErrors(errors[:MAX_ERRORS], len(errors))
    return graph


def import_blocks(name: str, source: str | None = None, line: int | None = None) -> None:
    """Import a module (``mypkg.blocks``) or a Python file (``my_blocks.py``, relative to the
    graph file) so that the blocks it registers can be used; a one-line GraphError if not."""
    import importlib
    import importlib.util
    import os
    import sys
    try:
        if name.endswith(".py"):
            base = os.path.dirname(source) if source and os.path.isfile(source) else "."
            path = os.path.normpath(os.path.join(base, name))
            module_name = "cvstream_user_" + re.sub(r"\W", "_", os.path.abspath(path))
            if module_name in sys.modules:
                return
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or not os.path.isfile(path):
                raise FileNotFoundError(f"no file '{path}'")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[module_name]
                raise
        else:
            importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - the user's module: any error is theirs
        raise GraphError(f"cannot import '{name}': {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}", source,
                         line) from None


def _options(graph: Graph, node, source: str) -> None:
    for key, vnode, line in _pairs(node, "options", source):
        value = _value(vnode, source)
        if key not in OPTIONS:
            raise GraphError(f"unknown option '{key}' (options: {', '.join(OPTIONS)})",
                             source, line)
        kind = OPTIONS[key]
        if not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or
                                                            value < 0)):
            raise GraphError(f"option '{key}' must be {kind.__name__}"
                             f"{' >= 0' if kind is int else ''}, got {value!r:.40}",
                             source, line)
        setattr(graph, key, value)


def _fragments(graph: Graph, node, source: str) -> None:
    """``fragments: {NAME: {cpus: 2, memory: 4e9, gpus: 0, labels: {zone: rack1}}}``."""
    for name, fnode, line in _pairs(node, "fragments", source):
        if not FRAGMENT_RE.match(name):
            raise GraphError(f"fragment name '{name}' must be an identifier", source, line)
        spec = {}
        if not (isinstance(fnode, yaml.ScalarNode) and fnode.value == ""):
            for key, vnode, kline in _pairs(fnode, f"fragments.{name}", source):
                value = _value(vnode, source)
                kinds = FRAGMENT_KEYS.get(key)
                if kinds is None:
                    raise GraphError(f"fragment '{name}': unknown key '{key}' (keys: "
                                     f"{', '.join(FRAGMENT_KEYS)})", source, kline)
                ok = isinstance(value, kinds) and not isinstance(value, bool)
                if ok and key == "labels":
                    ok = all(isinstance(k, str) and isinstance(v, str)
                             for k, v in value.items())
                elif ok:
                    ok = value >= 0
                if not ok:
                    want = "a mapping of strings" if key == "labels" else "a number >= 0"
                    raise GraphError(f"fragment '{name}': '{key}' must be {want}, got "
                                     f"{value!r:.40}", source, kline)
                spec[key] = value
        graph.fragments[name] = spec


def _variables(sections, source, overrides) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    if "variables" in sections:
        node = sections["variables"][0]
        if not (isinstance(node, yaml.ScalarNode) and node.value == ""):
            for key, vnode, _ in _pairs(node, "variables", source):
                variables[key] = _value(vnode, source)
    for key in list(overrides):
        if "." not in key:
            if key not in variables:
                raise GraphError(f"--set {key}: no such variable (variables: "
                                 f"{', '.join(variables) or 'none'})", source)
            variables[key] = overrides.pop(key)
    return variables


def _block_overrides(overrides, sections, source) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    names = set()
    if "blocks" in sections and isinstance(sections["blocks"][0], yaml.MappingNode):
        names = {_value(k, source) for k, _ in sections["blocks"][0].value}
    for key, value in overrides.items():
        block, _, param = key.partition(".")
        if block not in names:
            raise GraphError(f"--set {key}: no block named '{block}'", source)
        out.setdefault(block, {})[param] = value
    return out


def substitute(value: Any, variables: dict[str, Any]) -> Any:
    """Replace ``${name}`` in strings (recursively in lists and dicts)."""
    if isinstance(value, str):
        whole = VAR_RE.fullmatch(value.strip())
        if whole:
            return _lookup(whole.group(1), variables)
        return VAR_RE.sub(lambda m: str(_lookup(m.group(1), variables)), value)
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def _lookup(name: str, variables: dict[str, Any]) -> Any:
    if name not in variables:
        raise KeyError(name)
    return variables[name]


def _add_block(graph, name, node, line, variables, overrides, source):
    entries = _pairs(node, f"blocks.{name}", source)
    params: dict[str, Any] = {}
    lines: dict[str, int] = {}
    type_name = None
    fuse, replicas, fragment = True, 1, None
    for key, vnode, kline in entries:
        try:
            value = substitute(_value(vnode, source), variables)
        except KeyError as exc:
            raise GraphError(f"block '{name}': parameter '{key}': unknown variable "
                             f"'${{{exc.args[0]}}}'", source, kline) from None
        if key == "type":
            type_name = value
        elif key == "fuse":
            if not isinstance(value, bool):
                raise GraphError(f"block '{name}': 'fuse' is true or false, got {value!r:.40}",
                                 source, kline)
            fuse = value
        elif key == "replicas":
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 64:
                raise GraphError(f"block '{name}': 'replicas' is a count from 1 to 64, got "
                                 f"{value!r:.40}", source, kline)
            replicas, rline = value, kline
        elif key == "fragment":
            if not isinstance(value, str) or not FRAGMENT_RE.match(value):
                raise GraphError(f"block '{name}': 'fragment' is a name (letters, digits, _),"
                                 f" got {value!r:.40}", source, kline)
            fragment = value
        else:
            params[key] = value
            lines[key] = kline
    if type_name is None:
        raise GraphError(f"block '{name}' has no 'type'", source, line)
    for key, value in overrides.items():
        params[key] = value
    try:
        cls = lookup(str(type_name))
    except CvstreamError as exc:
        raise GraphError(f"block '{name}': {exc}", source, line) from None
    try:
        block = cls(name=name, **params)
    except ParamError as exc:
        raise GraphError(f"block '{name}' ({type_name}): {exc}", source,
                         lines.get(exc.field, line)) from None
    except CvstreamError as exc:
        raise GraphError(f"block '{name}' ({type_name}): {exc}", source, line) from None
    refusal = replicas_refused(name, block, replicas)
    if refusal:
        raise GraphError(refusal, source, rline)
    graph.add(name, block, line, fuse=fuse, replicas=replicas, fragment=fragment)


def _add_connections(graph, node, variables, source, errors, failed=frozenset()) -> set[str]:
    """Add every connection; those naming a block that failed to build are left out (that
    block's own error says what is wrong). Returns the blocks that lost a connection."""
    partial: set[str] = set()
    if not isinstance(node, yaml.SequenceNode):
        errors.append(GraphError("'connections' must be a list", source, _line(node)))
        return set(graph.nodes)
    for item in node.value:
        before = len(graph.connections)
        line = _line(item)
        try:
            value = _value(item, source)
        except GraphError as exc:
            errors.append(exc)
            continue
        try:
            if isinstance(value, str):
                src, arrow, dst = value.partition("->")
                if not arrow or not src.strip() or not dst.strip():
                    raise GraphError(f"connection '{value}' must look like 'src -> dst' or "
                                     "'src.port -> dst.port'", source, line)
                if not _names_failed(failed, src, dst):
                    graph.connect(src.strip(), dst.strip(), line=line)
            elif isinstance(value, dict) and {"src", "dst"} <= set(value):
                extra = set(value) - {"src", "dst", "buffer"}
                if extra:
                    raise GraphError(f"connection has unknown key(s) {', '.join(sorted(extra))}"
                                     " (keys: src, dst, buffer)", source, line)
                buffer = substitute(value.get("buffer"), variables)
                if buffer is not None and (not isinstance(buffer, int) or buffer < 1):
                    raise GraphError(f"connection buffer must be a positive item count, "
                                     f"got {buffer!r}", source, line)
                if not _names_failed(failed, str(value["src"]), str(value["dst"])):
                    graph.connect(str(value["src"]), str(value["dst"]), buffer, line)
            else:
                raise GraphError("a connection is 'src -> dst' or {src: ..., dst: ..., "
                                 "buffer: N}", source, line)
        except GraphError as exc:
            errors.append(exc)
        except KeyError as exc:
            errors.append(GraphError(f"unknown variable '${{{exc.args[0]}}}'", source, line))
        if len(graph.connections) == before:
            partial.update(n for n in graph.nodes if _mentions(item, n))
    return partial


def _names_failed(failed, *endpoints: str) -> bool:
    return any(e.strip().partition(".")[0] in failed for e in endpoints)


def _mentions(node: yaml.Node, name: str) -> bool:
    """Whether a connection's YAML names block ``name`` (to excuse its unconnected ports)."""
    text = yaml.serialize(node) if not isinstance(node, yaml.ScalarNode) else node.value
    return re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", text) is not None
