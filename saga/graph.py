"""The saga as a diagram, drawn from the deployed state machine's own definition.

The input is the ASL JSON that ``describe_state_machine`` returns (the resolved
definition Step Functions actually runs), never a hand-kept copy, so the picture
cannot drift from what is deployed. One execution's path (``executions.Step``s)
can be laid over it: states that succeeded in green, the failed step and a Fail
state reached in red, the compensations that ran after the failure in amber, and
the transitions taken drawn thick.

The definition is read into a small graph model first (states; edges for Next,
Choice rules and Default, Catch, End), which two renderers turn into Mermaid and
Graphviz DOT. ``render`` runs Graphviz's ``dot`` to turn DOT into SVG or PNG.
Parallel and Map states are drawn as single nodes; their branches are not.
"""

import json
import shutil
import subprocess
from dataclasses import dataclass
from itertools import pairwise

from booking_saga import choreography
from booking_saga.executions import Step
from booking_saga.services import Service

__all__ = ["GraphvizMissing", "render", "to_dot", "to_mermaid"]

START = "start"  # marker node ids; state nodes are s0, s1, ... so these cannot clash (and "end" is Mermaid syntax)
STOP = "stop"
ALL_ERRORS = "States.ALL"
FORMATS = ("svg", "png")
SUCCEEDED, FAILED, COMPENSATED = "succeeded", "failed", "compensated"
_SEVERITY = {SUCCEEDED: 0, COMPENSATED: 1, FAILED: 2}  # a state visited twice keeps its most severe style


class GraphvizMissing(RuntimeError):
    """Graphviz's ``dot`` is not on PATH, so DOT cannot be rendered to an image here."""


# ---------------------------------------------------------------- the graph model


@dataclass(frozen=True)
class _Node:
    id: str
    name: str
    type: str


@dataclass(frozen=True)
class _Edge:
    source: str  # node ids, or the START / STOP markers
    target: str
    kind: str  # start, next, choice, default, catch, end
    label: str = ""


@dataclass(frozen=True)
class _Graph:
    nodes: tuple[_Node, ...]
    edges: tuple[_Edge, ...]
    start: str  # id of the StartAt state

    @property
    def has_end(self) -> bool:
        return any(edge.target == STOP for edge in self.edges)


@dataclass(frozen=True)
class _Highlight:
    styles: dict[str, str]  # node id -> SUCCEEDED, FAILED or COMPENSATED; unvisited states are absent
    taken: frozenset[int]  # indices into _Graph.edges


def _graph(definition: str | dict) -> _Graph:
    asl = json.loads(definition) if isinstance(definition, str) else definition
    if not isinstance(asl, dict) or not isinstance(asl.get("States"), dict) or "StartAt" not in asl:
        raise ValueError("not a state machine definition: it needs StartAt and States")
    states: dict[str, dict] = asl["States"]
    ids = {name: f"s{index}" for index, name in enumerate(states)}

    def node_id(target: str, source: str, field: str) -> str:
        if target not in ids:
            raise ValueError(f"state {source!r}: {field} names {target!r}, which is not a state of this definition")
        return ids[target]

    edges = [_Edge(START, node_id(asl["StartAt"], "(definition)", "StartAt"), "start")]
    for name, state in states.items():
        source = ids[name]
        if "Next" in state:
            edges.append(_Edge(source, node_id(state["Next"], name, "Next"), "next"))
        for rule in state.get("Choices", []):
            edges.append(_Edge(source, node_id(rule["Next"], name, "a Choice rule"), "choice", _describe_rule(rule)))
        if "Default" in state:
            edges.append(_Edge(source, node_id(state["Default"], name, "Default"), "default", "default"))
        for catcher in state.get("Catch", []):
            errors = ", ".join("any error" if error == ALL_ERRORS else error for error in catcher["ErrorEquals"])
            edges.append(_Edge(source, node_id(catcher["Next"], name, "a Catch"), "catch", errors))
        if state.get("End") is True:
            edges.append(_Edge(source, STOP, "end"))
    nodes = tuple(_Node(ids[name], name, state.get("Type", "Task")) for name, state in states.items())
    return _Graph(nodes, tuple(edges), ids[asl["StartAt"]])


def _describe_rule(rule: dict) -> str:
    """A Choice rule as a short label: ``$.tier StringEquals "gold"``, ``not (...)``, ``(...) and (...)``."""
    if "Condition" in rule:  # JSONata
        return str(rule["Condition"])
    if "And" in rule or "Or" in rule:
        operator = "And" if "And" in rule else "Or"
        return f" {operator.lower()} ".join(f"({_describe_rule(inner)})" for inner in rule[operator])
    if "Not" in rule:
        return f"not ({_describe_rule(rule['Not'])})"
    comparisons = [key for key in rule if key not in ("Variable", "Next", "Comment")]
    if "Variable" in rule and comparisons:
        operator = comparisons[0]
        return f"{rule['Variable']} {operator} {json.dumps(rule[operator], sort_keys=True)}"
    return "rule"


def _highlight(graph: _Graph, path: list[Step]) -> _Highlight:
    """Style the states one execution entered, and find the transitions it took.

    The failed step is the first Task that failed (as ``saga.bookings.Outcome.failed_step``); Tasks after it are
    the compensations, except one that itself failed, which is drawn failed too. States of Parallel or Map branches
    (and any name not in this definition) are skipped, so the path is read at this graph's level.
    """
    failed_index = next((i for i, step in enumerate(path) if step.failed and step.state_type == "Task"), None)
    ids = {node.name: node.id for node in graph.nodes}
    styles: dict[str, str] = {}
    visited: list[tuple[str, Step]] = []
    for index, step in enumerate(path):
        if step.name not in ids:
            continue
        node = ids[step.name]
        visited.append((node, step))
        style = _style(step, index, failed_index)
        if node not in styles or _SEVERITY[style] > _SEVERITY[styles[node]]:
            styles[node] = style
    return _Highlight(styles, _taken(graph, visited))


def _style(step: Step, index: int, failed_index: int | None) -> str:
    if index == failed_index or step.state_type == "Fail" or step.failed:
        return FAILED
    if failed_index is not None and index > failed_index and step.state_type == "Task":
        return COMPENSATED
    return SUCCEEDED


def _taken(graph: _Graph, visited: list[tuple[str, Step]]) -> frozenset[int]:
    """The edges the visited states were joined by: a catch edge where the state before failed."""
    taken: set[int] = set()

    def take(source: str, target: str, caught: bool) -> None:
        candidates = [i for i, edge in enumerate(graph.edges) if edge.source == source and edge.target == target]
        preferred = [i for i in candidates if (graph.edges[i].kind == "catch") == caught]
        if preferred or candidates:
            taken.add((preferred or candidates)[0])

    if visited and visited[0][0] == graph.start:
        take(START, graph.start, caught=False)
    for (source, step), (target, _) in pairwise(visited):
        take(source, target, caught=step.failed)
    if visited and not visited[-1][1].failed and visited[-1][1].exited is not None:
        take(visited[-1][0], STOP, caught=False)
    return frozenset(taken)


# ---------------------------------------------------------------- Mermaid

# (open, close) around the quoted label, per state type.
_MERMAID_SHAPES = {
    "Task": ("[", "]"),
    "Pass": ("(", ")"),
    "Choice": ("{", "}"),
    "Wait": ("{{", "}}"),
    "Parallel": ("[[", "]]"),
    "Map": ("[[", "]]"),
    "Succeed": ("([", "])"),
    "Fail": ("(((", ")))"),
}
_MERMAID_STYLES = {
    SUCCEEDED: "fill:#d4edda,stroke:#2e7d32,color:#1b5e20",
    FAILED: "fill:#f8d7da,stroke:#c62828,color:#b71c1c",
    COMPENSATED: "fill:#fff3cd,stroke:#ff8f00,color:#7a4f01",
}
_MERMAID_TAKEN = "stroke-width:4px"


def _mermaid_text(text: str) -> str:
    """A quoted Mermaid string: quotes, '#' and angle brackets as Mermaid entity codes, no line breaks."""
    text = " ".join(text.split())
    for raw, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(raw, code)
    return f'"{text}"'


def to_mermaid(definition: str | dict, path: list[Step] | None = None) -> str:
    """A Mermaid flowchart of the definition, with ``path`` (one execution's steps) highlighted if given."""
    graph = _graph(definition)
    lines = ["flowchart TD", f"    {START}(({_mermaid_text('Start')}))"]
    for node in graph.nodes:
        opening, closing = _MERMAID_SHAPES.get(node.type, ("[", "]"))
        lines.append(f"    {node.id}{opening}{_mermaid_text(node.name)}{closing}")
    if graph.has_end:
        lines.append(f"    {STOP}(({_mermaid_text('End')}))")
    for edge in graph.edges:
        arrow = "-.->" if edge.kind == "catch" else "-->"
        label = f"|{_mermaid_text(edge.label)}|" if edge.label else ""
        lines.append(f"    {edge.source} {arrow}{label} {edge.target}")
    if path is not None:
        highlight = _highlight(graph, path)
        lines += [f"    classDef {name} {style}" for name, style in _MERMAID_STYLES.items()]
        for name in _MERMAID_STYLES:
            members = [node.id for node in graph.nodes if highlight.styles.get(node.id) == name]
            if members:
                lines.append(f"    class {','.join(members)} {name}")
        if highlight.taken:
            lines.append(f"    linkStyle {','.join(str(i) for i in sorted(highlight.taken))} {_MERMAID_TAKEN}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Graphviz DOT

# Shape attributes and style per state type.
_DOT_SHAPES: dict[str, tuple[dict[str, str], str]] = {
    "Task": ({"shape": "box"}, "rounded"),
    "Pass": ({"shape": "box"}, ""),
    "Choice": ({"shape": "diamond"}, ""),
    "Wait": ({"shape": "hexagon"}, ""),
    "Parallel": ({"shape": "box3d"}, ""),
    "Map": ({"shape": "box3d"}, ""),
    "Succeed": ({"shape": "ellipse", "peripheries": "2"}, ""),
    "Fail": ({"shape": "doubleoctagon"}, ""),
}
_DOT_STYLES = {  # fillcolor, color (the outline), fontcolor
    SUCCEEDED: ("#d4edda", "#2e7d32", "#1b5e20"),
    FAILED: ("#f8d7da", "#c62828", "#b71c1c"),
    COMPENSATED: ("#fff3cd", "#ff8f00", "#7a4f01"),
}
_DOT_TAKEN_PENWIDTH = "3"


def _dot_text(text: str) -> str:
    """A quoted DOT string: backslashes and quotes escaped (so ``\\n`` and friends stay literal)."""
    text = " ".join(text.split())
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_attributes(attributes: dict[str, str]) -> str:
    return "[" + ", ".join(f"{key}={_dot_text(value)}" for key, value in attributes.items()) + "]"


def to_dot(definition: str | dict, path: list[Step] | None = None) -> str:
    """A Graphviz DOT digraph of the definition, with ``path`` (one execution's steps) highlighted if given."""
    graph = _graph(definition)
    highlight = _highlight(graph, path) if path is not None else _Highlight({}, frozenset())
    lines = [
        "digraph StateMachine {",
        '    graph [rankdir="TB", fontname="Helvetica"];',
        '    node [fontname="Helvetica", fontsize="11"];',
        '    edge [fontname="Helvetica", fontsize="9"];',
        f"    {START} {_dot_attributes({'label': 'Start', 'shape': 'circle', 'fontsize': '9'})};",
    ]
    for node in graph.nodes:
        shape, style = _DOT_SHAPES.get(node.type, ({"shape": "box"}, ""))
        attributes = {"label": node.name, **shape}
        if node.id in highlight.styles:
            fill, outline, font = _DOT_STYLES[highlight.styles[node.id]]
            style = ",".join(filter(None, [style, "filled"]))
            attributes |= {"fillcolor": fill, "color": outline, "fontcolor": font}
        if style:
            attributes["style"] = style
        lines.append(f"    {node.id} {_dot_attributes(attributes)};")
    if graph.has_end:
        lines.append(f"    {STOP} {_dot_attributes({'label': 'End', 'shape': 'circle', 'fontsize': '9'})};")
    for index, edge in enumerate(graph.edges):
        attributes = {"label": edge.label} if edge.label else {}
        if edge.kind == "catch":
            attributes["style"] = "dashed"
        if index in highlight.taken:
            attributes["penwidth"] = _DOT_TAKEN_PENWIDTH
        suffix = f" {_dot_attributes(attributes)}" if attributes else ""
        lines.append(f"    {edge.source} -> {edge.target}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot_source: str, fmt: str) -> bytes:
    """Run Graphviz's ``dot -T<fmt>`` on ``dot_source``: an SVG or PNG image, as bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"cannot render {fmt!r}: choose one of {', '.join(FORMATS)}")
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizMissing(
            "Graphviz's `dot` is not on PATH: install Graphviz (e.g. apt install graphviz, brew install graphviz) "
            "or use the Mermaid format"
        )
    result = subprocess.run([dot, f"-T{fmt}"], input=dot_source.encode(), capture_output=True, check=False)
    if result.returncode != 0:
        problem = result.stderr.decode(errors="replace").strip() or f"exit status {result.returncode}"
        raise RuntimeError(f"dot -T{fmt} failed: {problem}")
    return result.stdout


# ---------------------------------------------------------------- the choreography's event flow


def event_flow_mermaid(services: tuple[Service, ...], seen: list[str] | None = None) -> str:
    """The choreographed saga's events and the services' reactions to them (``booking_saga.choreography``) as a
    Mermaid flowchart; ``seen`` (a booking's events, from its saga log) highlighted if given. A failure's edges
    are dotted."""
    lines = ["flowchart TD"]
    edges: list[tuple[str, str, bool]] = []  # (source, target, on failure)
    events = [choreography.REQUESTED]
    for reaction in choreography.reactions(services):
        lines.append(f"    {reaction.step}({_mermaid_text(f'{reaction.service.name}.{reaction.action}')})")
        edges += [(event, reaction.step, reaction.action == "cancel") for event in reaction.on]
        for emitted in reaction.emits:
            edges.append((reaction.step, emitted, emitted.endswith("Failed") or reaction.action == "cancel"))
            events.append(emitted)
        if reaction.action == "cancel":
            edges.append((reaction.step, choreography.PARKED, True))  # its attempts all failed: parked
    for event, end in choreography.ends(services).items():
        edges.append((event, end, end == choreography.FAILED))
    events += [*choreography.ends(services).values(), choreography.PARKED]
    lines += [f"    {event}([{_mermaid_text(event)}])" for event in dict.fromkeys(events)]
    lines += [f"    {source} {'-.->' if failure else '-->'} {target}" for source, target, failure in edges]
    if seen is not None:
        failed = any(event.endswith("Failed") for event in seen)  # a step's failure, BookingFailed, or parked
        style = FAILED if failed else SUCCEEDED
        lines.append(f"    classDef {style} {_MERMAID_STYLES[style]}")
        lines.append(f"    class {','.join(dict.fromkeys(seen))} {style}")
    return "\n".join(lines) + "\n"
