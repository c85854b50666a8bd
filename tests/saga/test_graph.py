"""The saga drawn from its synthesized definition (Mermaid and DOT), with one execution's path laid over it."""

import colorsys
import json
import re
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from booking_saga.choreography import reactions
from booking_saga.executions import Step
from booking_saga.services import SERVICES
from saga.graph import GraphvizMissing, event_flow_mermaid, render, to_dot, to_mermaid
from tests.stacks.definition import resolved_definition

START, END = "<start>", "<end>"  # how these tests name the Start and End markers
STATE_NAMES = {
    "ReserveFlight",
    "ReserveHotel",
    "ProcessPayment",
    "BookingConfirmed",
    "RefundPayment",
    "CancelHotel",
    "CancelFlight",
    "BookingFailed",
    "SendToDeadLetterQueue",
    "CompensationFailed",
    "ParkFailed",
}
# The saga's whole graph, as README.md draws it: (source, target, kind, label).
SAGA_EDGES = {
    (START, "ReserveFlight", "next", ""),
    ("ReserveFlight", "ReserveHotel", "next", ""),
    ("ReserveHotel", "ProcessPayment", "next", ""),
    ("ProcessPayment", "BookingConfirmed", "next", ""),
    ("ReserveFlight", "CancelFlight", "catch", "any error"),
    ("ReserveHotel", "CancelHotel", "catch", "any error"),
    ("ProcessPayment", "RefundPayment", "catch", "any error"),
    ("RefundPayment", "CancelHotel", "next", ""),
    ("CancelHotel", "CancelFlight", "next", ""),
    ("CancelFlight", "BookingFailed", "next", ""),
    ("RefundPayment", "SendToDeadLetterQueue", "catch", "any error"),
    ("CancelHotel", "SendToDeadLetterQueue", "catch", "any error"),
    ("CancelFlight", "SendToDeadLetterQueue", "catch", "any error"),
    ("SendToDeadLetterQueue", "CompensationFailed", "next", ""),
    ("SendToDeadLetterQueue", "ParkFailed", "catch", "any error"),
}
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def path_of(*steps: tuple) -> list[Step]:
    """Steps one second apart, each exited: (name, state_type) or (name, state_type, error)."""
    path = []
    for index, (name, state_type, *error) in enumerate(steps):
        entered = T0 + timedelta(seconds=index)
        error = error[0] if error else None
        path.append(Step(name, state_type, entered, entered + timedelta(milliseconds=500), 1, error, error))
    return path


HAPPY = path_of(
    ("ReserveFlight", "Task"), ("ReserveHotel", "Task"), ("ProcessPayment", "Task"), ("BookingConfirmed", "Succeed")
)
COMPENSATED = path_of(
    ("ReserveFlight", "Task"),
    ("ReserveHotel", "Task"),
    ("ProcessPayment", "Task", "ChaosFailure"),
    ("RefundPayment", "Task"),
    ("CancelHotel", "Task"),
    ("CancelFlight", "Task"),
    ("BookingFailed", "Fail", "ChaosFailure"),
)
COMPENSATION_FAILED = path_of(
    ("ReserveFlight", "Task"),
    ("ReserveHotel", "Task"),
    ("ProcessPayment", "Task", "ChaosFailure"),
    ("RefundPayment", "Task"),
    ("CancelHotel", "Task", "ChaosFailure"),
    ("SendToDeadLetterQueue", "Task"),
    ("CompensationFailed", "Fail", "CompensationFailed"),
)

# A hand-written definition with what the saga lacks: a Choice (rules and Default), Wait, Pass, End, Parallel.
CHOICE_ASL = {
    "StartAt": "Route",
    "States": {
        "Route": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.tier", "StringEquals": "gold", "Next": "Gold lounge"},
                {
                    "And": [
                        {"Variable": "$.nights", "NumericGreaterThan": 3},
                        {"Not": {"Variable": "$.vip", "BooleanEquals": True}},
                    ],
                    "Next": "Wait a bit",
                },
            ],
            "Default": "No tier",
        },
        "Gold lounge": {"Type": "Pass", "End": True},
        "Wait a bit": {"Type": "Wait", "Seconds": 5, "Next": "Fan out"},
        "Fan out": {
            "Type": "Parallel",
            "Branches": [{"StartAt": "Inner", "States": {"Inner": {"Type": "Pass", "End": True}}}],
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
        "No tier": {"Type": "Fail", "Error": "NoTier"},
    },
}


# ---------------------------------------------------------------- reading the output back


Edge = tuple[str, str, str, str]  # (source, target, kind, label); kind is next (a solid line) or catch (dashed)


@dataclass
class Diagram:
    """Either format read back, by state name: the Start and End markers are START and END in edges."""

    names: dict[str, str]  # node id -> state name (markers excluded)
    shapes: dict[str, str]  # state name -> shape (Mermaid brackets, or DOT shape and peripheries)
    edges: list[Edge]  # in output order
    styles: dict[str, str]  # state name -> class (Mermaid) or outline colour (DOT); unstyled states absent
    thick: set[Edge]  # the emphasised edges
    colours: dict[str, str]  # Mermaid: class -> stroke colour; DOT: outline colour -> itself


MARKERS = {"start": (START, "Start"), "stop": (END, "End")}  # marker node id -> (name in these tests, label)


def named_diagram(
    labels: dict, shapes: dict, edges: list[Edge], styles: dict, thick: list[Edge], colours: dict
) -> Diagram:
    """Name everything by state name; ``labels``, ``shapes``, ``styles`` and the edges are keyed by node id."""
    assert "start" in labels, "no Start marker"
    for node_id, (_, label) in MARKERS.items():
        assert labels.get(node_id, label) == label, f"marker {node_id} is labelled {labels[node_id]!r}"
    name = {node_id: MARKERS.get(node_id, (label,))[0] for node_id, label in labels.items()}

    def by_name(edge: Edge) -> Edge:
        source, target, kind, label = edge
        assert source in labels and target in labels, f"edge between undeclared ids: {edge}"
        return name[source], name[target], kind, label

    states = {node_id: label for node_id, label in labels.items() if node_id not in MARKERS}
    return Diagram(
        states,
        {name[node_id]: shape for node_id, shape in shapes.items() if node_id in states},
        [by_name(edge) for edge in edges],
        {name[node_id]: style for node_id, style in styles.items()},
        {by_name(edge) for edge in thick},
        colours,
    )


MERMAID_NODE = re.compile(r'^    (\w+)([\[({>]+)"([^"]*)"([\])}]+)$')
MERMAID_EDGE = re.compile(r'^    (\w+) (-->|-\.->)(?:\|"([^"]*)"\|)? (\w+)$')
MERMAID_CLASSDEF = re.compile(r"^    classDef (\w+) (\S+)$")
MERMAID_CLASS = re.compile(r"^    class ([\w,]+) (\w+)$")
MERMAID_LINKSTYLE = re.compile(r"^    linkStyle ([\d,]+) (\S*stroke-width:\d+px\S*)$")
BRACKETS = {"[": "]", "(": ")", "{": "}", "[[": "]]", "([": "])", "((": "))", "(((": ")))", "{{": "}}"}


def mermaid_unescape(text: str) -> str:
    return text.replace("#quot;", '"').replace("#lt;", "<").replace("#gt;", ">").replace("#35;", "#")


def read_mermaid(text: str) -> Diagram:
    """Parse every line, or fail: a node, an edge between declared ids, classDef, class, linkStyle."""
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    labels: dict[str, str] = {}
    shapes: dict[str, str] = {}
    edges: list[Edge] = []
    classdefs: dict[str, str] = {}
    styles: dict[str, str] = {}
    thick_indices: set[int] = set()
    for line in lines[1:]:
        if match := MERMAID_NODE.fullmatch(line):
            node_id, opening, label, closing = match.groups()
            assert node_id not in labels, f"{node_id} declared twice"
            assert node_id != "end", "'end' is a Mermaid keyword, not a usable id"
            assert BRACKETS.get(opening) == closing, line
            labels[node_id] = mermaid_unescape(label)
            shapes[node_id] = opening + closing
        elif match := MERMAID_EDGE.fullmatch(line):
            source, arrow, label, target = match.groups()
            assert source in labels and target in labels, f"edge between undeclared ids: {line!r}"
            edges.append((source, target, "catch" if arrow == "-.->" else "next", mermaid_unescape(label or "")))
        elif match := MERMAID_CLASSDEF.fullmatch(line):
            classdefs[match[1]] = match[2]
        elif match := MERMAID_CLASS.fullmatch(line):
            assert match[2] in classdefs, f"class {match[2]} used before its classDef"
            for node_id in match[1].split(","):
                assert node_id in labels, f"class on undeclared id {node_id}"
                assert node_id not in styles, f"{node_id} styled twice"
                styles[node_id] = match[2]
        elif match := MERMAID_LINKSTYLE.fullmatch(line):
            thick_indices |= {int(index) for index in match[1].split(",")}
        else:
            pytest.fail(f"unparsed Mermaid line: {line!r}")
    assert all(index < len(edges) for index in thick_indices), "linkStyle names an edge that does not exist"
    colours = {name: re.search(r"stroke:(#[0-9a-f]{6})", style)[1] for name, style in classdefs.items()}
    return named_diagram(labels, shapes, edges, styles, [edges[index] for index in thick_indices], colours)


DOT_STATEMENT = re.compile(r"^    (\w+)(?: -> (\w+))?(?: \[(.*)\])?;$")
DOT_ATTRIBUTE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"(?:, |$)')


def dot_attributes(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    matches = list(DOT_ATTRIBUTE.finditer(text))
    assert "".join(match[0] for match in matches) == text, f"unparsed DOT attributes: {text!r}"
    return {match[1]: re.sub(r"\\(.)", r"\1", match[2]) for match in matches}


def read_dot(text: str) -> Diagram:
    lines = text.splitlines()
    assert lines[0] == "digraph StateMachine {"
    assert lines[-1] == "}"
    labels: dict[str, str] = {}
    shapes: dict[str, str] = {}
    edges: list[Edge] = []
    styles: dict[str, str] = {}
    thick: list[Edge] = []
    for line in lines[1:-1]:
        match = DOT_STATEMENT.fullmatch(line)
        assert match, f"unparsed DOT line: {line!r}"
        source, target, attribute_text = match.groups()
        attributes = dot_attributes(attribute_text)
        if source in ("graph", "node", "edge"):
            continue
        if target is None:
            assert source not in labels, f"{source} declared twice"
            labels[source] = attributes["label"]
            shapes[source] = f"{attributes['shape']}/{attributes.get('peripheries', '1')}"
            if "fillcolor" in attributes:
                assert "filled" in attributes["style"].split(",")
                styles[source] = attributes["color"]
        else:
            assert source in labels and target in labels, f"edge between undeclared ids: {line!r}"
            kind = "catch" if attributes.get("style") == "dashed" else "next"
            edges.append((source, target, kind, attributes.get("label", "")))
            if float(attributes.get("penwidth", "1")) > 1:
                thick.append(edges[-1])
    colours = {colour: colour for colour in styles.values()}
    return named_diagram(labels, shapes, edges, styles, thick, colours)


READERS = {"mermaid": (to_mermaid, read_mermaid), "dot": (to_dot, read_dot)}


def draw(fmt: str, definition, path=None) -> Diagram:
    write, read = READERS[fmt]
    return read(write(definition, path))


def hue(colour: str) -> float:
    """The hue of '#rrggbb', in degrees."""
    red, green, blue = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hsv(red, green, blue)[0] * 360


def style_meaning(drawn: Diagram) -> dict[str, str]:
    """Each styled state's style read from its colour: green succeeded, red failed, amber compensated."""

    def meaning(style: str) -> str:
        degrees = hue(drawn.colours[style])
        if 90 <= degrees <= 150:
            found = "succeeded"
        elif degrees <= 15 or degrees >= 345:
            found = "failed"
        elif 25 <= degrees <= 60:
            found = "compensated"
        else:
            raise AssertionError(f"{style} ({drawn.colours[style]}) is neither green, red nor amber")
        assert style.startswith("#") or style == found, f"Mermaid class {style} is coloured as {found}"
        return found

    return {name: meaning(style) for name, style in drawn.styles.items()}


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def definition(assembly) -> str:
    """The synthesized state machine's definition as JSON text, the shape describe_state_machine returns."""
    return json.dumps(resolved_definition(assembly.template))


# ---------------------------------------------------------------- the saga's graph


@pytest.mark.parametrize("fmt", READERS)
def test_every_state_is_exactly_one_node_with_a_safe_id(definition, fmt):
    diagram = draw(fmt, definition)

    assert sorted(diagram.names.values()) == sorted(json.loads(definition)["States"])
    assert set(diagram.names.values()) == STATE_NAMES
    assert all(re.fullmatch(r"s\d+", node_id) for node_id in diagram.names)


@pytest.mark.parametrize("fmt", READERS)
def test_the_edges_are_the_forward_chain_the_catches_and_the_compensation_chain(definition, fmt):
    diagram = draw(fmt, definition)

    assert len(diagram.edges) == len(set(diagram.edges)), "an edge drawn twice"
    assert set(diagram.edges) == SAGA_EDGES
    catches = {source: target for source, target, kind, _ in diagram.edges if kind == "catch"}
    assert catches["ReserveFlight"] == "CancelFlight"
    assert catches["ReserveHotel"] == "CancelHotel"
    assert catches["ProcessPayment"] == "RefundPayment"
    assert diagram.edges[0] == (START, "ReserveFlight", "next", ""), "the StartAt marker comes first"


@pytest.mark.parametrize("fmt", READERS)
def test_succeed_and_fail_have_shapes_of_their_own(definition, fmt):
    shapes = draw(fmt, definition).shapes

    assert shapes["BookingFailed"] == shapes["CompensationFailed"]
    assert len({shapes["ReserveFlight"], shapes["BookingConfirmed"], shapes["BookingFailed"]}) == 3


@pytest.mark.parametrize("fmt", READERS)
def test_without_a_path_nothing_is_styled_or_emphasised(definition, fmt):
    diagram = draw(fmt, definition)

    assert diagram.styles == {}
    assert diagram.thick == set()


def test_the_output_is_deterministic_and_the_same_from_text_or_dict(definition):
    as_dict = json.loads(definition)

    for write in (to_mermaid, to_dot):
        assert write(definition, COMPENSATED) == write(definition, COMPENSATED) == write(as_dict, COMPENSATED)
        assert write(definition) == write(as_dict)


# ---------------------------------------------------------------- an execution's path


@pytest.mark.parametrize("fmt", READERS)
def test_a_compensated_booking_shows_the_failed_step_the_undo_chain_and_the_edges_taken(definition, fmt):
    diagram = draw(fmt, definition, COMPENSATED)

    assert style_meaning(diagram) == {
        "ReserveFlight": "succeeded",
        "ReserveHotel": "succeeded",
        "ProcessPayment": "failed",
        "RefundPayment": "compensated",
        "CancelHotel": "compensated",
        "CancelFlight": "compensated",
        "BookingFailed": "failed",
    }
    assert "BookingConfirmed" not in diagram.styles
    assert diagram.thick == {
        (START, "ReserveFlight", "next", ""),
        ("ReserveFlight", "ReserveHotel", "next", ""),
        ("ReserveHotel", "ProcessPayment", "next", ""),
        ("ProcessPayment", "RefundPayment", "catch", "any error"),
        ("RefundPayment", "CancelHotel", "next", ""),
        ("CancelHotel", "CancelFlight", "next", ""),
        ("CancelFlight", "BookingFailed", "next", ""),
    }


@pytest.mark.parametrize("fmt", READERS)
def test_a_confirmed_booking_is_green_along_the_forward_chain(definition, fmt):
    diagram = draw(fmt, definition, HAPPY)

    assert style_meaning(diagram) == dict.fromkeys(
        ("ReserveFlight", "ReserveHotel", "ProcessPayment", "BookingConfirmed"), "succeeded"
    )
    assert diagram.thick == {
        (START, "ReserveFlight", "next", ""),
        ("ReserveFlight", "ReserveHotel", "next", ""),
        ("ReserveHotel", "ProcessPayment", "next", ""),
        ("ProcessPayment", "BookingConfirmed", "next", ""),
    }


@pytest.mark.parametrize("fmt", READERS)
def test_a_compensation_that_fails_is_red_and_its_catch_to_the_dead_letter_queue_is_taken(definition, fmt):
    diagram = draw(fmt, definition, COMPENSATION_FAILED)

    assert style_meaning(diagram) == {
        "ReserveFlight": "succeeded",
        "ReserveHotel": "succeeded",
        "ProcessPayment": "failed",
        "RefundPayment": "compensated",
        "CancelHotel": "failed",
        "SendToDeadLetterQueue": "compensated",
        "CompensationFailed": "failed",
    }
    assert ("CancelHotel", "SendToDeadLetterQueue", "catch", "any error") in diagram.thick
    assert ("CancelHotel", "CancelFlight", "next", "") not in diagram.thick
    assert ("SendToDeadLetterQueue", "CompensationFailed", "next", "") in diagram.thick


def test_mermaid_declares_the_three_classes_and_one_thick_link_style(definition):
    lines = to_mermaid(definition, COMPENSATED).splitlines()

    assert [line.split()[1] for line in lines if line.startswith("    classDef ")] == [
        "succeeded",
        "failed",
        "compensated",
    ]
    assert len([line for line in lines if line.startswith("    linkStyle ")]) == 1


# ---------------------------------------------------------------- a Choice, and shapes beyond the saga's


@pytest.mark.parametrize("fmt", READERS)
def test_choice_rules_and_default_are_labelled_edges_and_end_goes_to_the_end_marker(fmt):
    diagram = draw(fmt, CHOICE_ASL)

    from_route = [(target, label) for source, target, _, label in diagram.edges if source == "Route"]
    assert [target for target, _ in from_route] == ["Gold lounge", "Wait a bit", "No tier"]
    gold, nights, default = (label for _, label in from_route)
    assert gold == '$.tier StringEquals "gold"'
    assert "$.nights NumericGreaterThan 3" in nights
    assert "and" in nights
    assert "not ($.vip BooleanEquals true)" in nights
    assert default == "default"
    assert ("Gold lounge", END, "next", "") in diagram.edges
    assert ("Wait a bit", "Fan out", "next", "") in diagram.edges
    assert "Inner" not in diagram.names.values(), "a Parallel is one node: its branches are not drawn"
    shapes = diagram.shapes
    assert len({shapes[name] for name in ("Route", "Gold lounge", "Wait a bit", "Fan out", "Done", "No tier")}) == 6


@pytest.mark.parametrize("fmt", READERS)
def test_a_path_through_a_choice_default_to_a_fail_state(fmt):
    path = path_of(("Route", "Choice"), ("No tier", "Fail", "NoTier"))

    diagram = draw(fmt, CHOICE_ASL, path)

    assert style_meaning(diagram) == {"Route": "succeeded", "No tier": "failed"}
    assert diagram.thick == {(START, "Route", "next", ""), ("Route", "No tier", "next", "default")}


@pytest.mark.parametrize("fmt", READERS)
def test_a_path_skips_states_inside_a_parallel_and_reaches_the_end(fmt):
    path = path_of(("Route", "Choice"), ("Wait a bit", "Wait"), ("Fan out", "Parallel"), ("Inner", "Pass"))
    path += path_of(("Done", "Succeed"))

    diagram = draw(fmt, CHOICE_ASL, path)

    assert set(style_meaning(diagram).values()) == {"succeeded"}
    assert set(diagram.styles) == {"Route", "Wait a bit", "Fan out", "Done"}
    assert ("Fan out", "Done", "next", "") in diagram.thick
    gold = path_of(("Route", "Choice"), ("Gold lounge", "Pass"))
    assert ("Gold lounge", END, "next", "") in draw(fmt, CHOICE_ASL, gold).thick


@pytest.mark.parametrize("fmt", READERS)
def test_a_failed_state_takes_its_catch_even_where_its_next_goes_to_the_same_state(fmt):
    asl = {
        "StartAt": "Try",
        "States": {
            "Try": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Next": "Tidy up",
                "Catch": [{"ErrorEquals": ["SoldOut", "States.Timeout"], "Next": "Tidy up"}],
            },
            "Tidy up": {"Type": "Pass", "End": True},
        },
    }
    caught = ("Try", "Tidy up", "catch", "SoldOut, States.Timeout")
    plain = ("Try", "Tidy up", "next", "")

    failed = draw(fmt, asl, path_of(("Try", "Task", "SoldOut"), ("Tidy up", "Pass")))
    succeeded = draw(fmt, asl, path_of(("Try", "Task"), ("Tidy up", "Pass")))

    assert caught in failed.thick
    assert plain not in failed.thick
    assert plain in succeeded.thick
    assert caught not in succeeded.thick
    assert style_meaning(failed) == {"Try": "failed", "Tidy up": "succeeded"}


@pytest.mark.parametrize("fmt", READERS)
def test_names_with_quotes_spaces_and_punctuation_survive(fmt):
    name = 'Check "VIP" #1 <now> | a\\b'
    asl = {"StartAt": name, "States": {name: {"Type": "Pass", "Next": "end"}, "end": {"Type": "Succeed"}}}

    diagram = draw(fmt, asl)

    assert sorted(diagram.names.values()) == sorted([name, "end"])
    assert (name, "end", "next", "") in diagram.edges


def test_a_definition_naming_a_missing_state_is_refused():
    broken = {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "x", "Next": "Nowhere"}}}

    with pytest.raises(ValueError, match="Nowhere"):
        to_mermaid(broken)
    with pytest.raises(ValueError, match="StartAt and States"):
        to_dot({"definition": "{}"})


# ---------------------------------------------------------------- render


def fake_dot(directory, script: str) -> None:
    executable = directory / "dot"
    executable.write_text("#!/bin/sh\n" + script)
    executable.chmod(executable.stat().st_mode | stat.S_IXUSR)


def test_render_without_graphviz_says_to_install_it_or_use_mermaid(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(GraphvizMissing) as raised:
        render(to_dot(CHOICE_ASL), "svg")

    message = str(raised.value)
    assert "\n" not in message
    assert "Graphviz" in message
    assert "Mermaid" in message
    assert isinstance(raised.value, RuntimeError)


def test_render_hands_the_source_to_dot_with_the_format(monkeypatch, tmp_path):
    # PATH holds only the fake, so it echoes its arguments and its input with shell builtins alone.
    fake_dot(tmp_path, 'printf "%s\\n" "$*"; while IFS= read -r line; do printf "%s\\n" "$line"; done\n')
    monkeypatch.setenv("PATH", str(tmp_path))

    output = render("digraph G {\n  a -> b;\n}\n", "png")

    assert output == b"-Tpng\ndigraph G {\n  a -> b;\n}\n"


def test_render_reports_what_dot_said_when_it_fails(monkeypatch, tmp_path):
    fake_dot(tmp_path, 'echo "syntax error in line 1" >&2; exit 1\n')
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(RuntimeError, match="syntax error in line 1"):
        render("digraph {", "svg")


def test_render_refuses_other_formats():
    with pytest.raises(ValueError, match="svg, png"):
        render("digraph G {}", "pdf")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_graphviz_renders_the_highlighted_saga(definition):
    source = to_dot(definition, COMPENSATED)

    svg = render(source, "svg")
    png = render(source, "png")

    assert svg.lstrip().startswith((b"<?xml", b"<svg"))
    assert b"ProcessPayment" in svg
    assert png.startswith(b"\x89PNG")


def test_the_choreographys_event_flow_has_every_reaction_and_highlights_a_bookings_events():
    text = event_flow_mermaid(SERVICES, ["BookingRequested", "FlightReserved", "ReserveHotelFailed"])

    lines = text.splitlines()
    for reaction in reactions(SERVICES):
        for event in reaction.on:
            assert any(line.strip().startswith(f"{event} ") and line.endswith(reaction.step) for line in lines)
        for emitted in reaction.emits:
            assert any(line.strip().startswith(f"{reaction.step} ") and line.endswith(emitted) for line in lines)
    assert "    PaymentProcessed --> BookingConfirmed" in lines
    assert "    FlightCancelled -.-> BookingFailed" in lines
    assert lines[-1] == "    class BookingRequested,FlightReserved,ReserveHotelFailed failed"
