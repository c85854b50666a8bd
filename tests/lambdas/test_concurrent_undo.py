"""Two undos of one booking at the same moment give its capacity back once.

Events arrive at least once, so two reconciler runs, the reconciler and `saga replay`, or two deliveries of one
cancel can undo the same booking at once. Here both cancels are made to read the reservation before either
writes (a barrier in the table's reads), the worst interleaving; DynamoDB then serializes their writes, as it
does, and the release's condition (still RESERVED, still ours) must let exactly one give the seats back.
"""

import threading
from types import SimpleNamespace
from typing import Any

import flight
from tests.factories import booking
from tests.lambdas.support import TABLES


class Interleaved:
    """A table whose booking reads wait for each other, and whose writes take turns, as DynamoDB's would."""

    def __init__(self, table: Any, readers: int):
        self._table = table
        self._barrier = threading.Barrier(readers, timeout=10)
        self._turn = threading.Lock()
        self._waited = threading.local()
        self.name = table.name
        client = table.meta.client
        self.meta = SimpleNamespace(
            client=SimpleNamespace(exceptions=client.exceptions, transact_write_items=self._transact)
        )
        self._client = client

    def get_item(self, **kwargs: Any) -> dict:
        with self._turn:
            item = self._table.get_item(**kwargs)
        if kwargs["Key"]["pk"].startswith("booking#") and not getattr(self._waited, "done", False):
            self._waited.done = True
            self._barrier.wait()  # every cancel has read the record before any of them writes
        return item

    def put_item(self, **kwargs: Any) -> dict:
        with self._turn:
            return self._table.put_item(**kwargs)

    def _transact(self, **kwargs: Any) -> dict:
        with self._turn:
            return self._client.transact_write_items(**kwargs)


def test_two_cancels_racing_on_one_booking_give_its_seats_back_once(monkeypatch, dynamodb, stock, invoke):
    stock("flight", "NH101", 5)
    invoke("flight", "reserve", booking())
    table = dynamodb.Table(TABLES["flight"])
    shared = Interleaved(table, readers=2)
    monkeypatch.setattr(flight.service, "table", lambda: shared)

    answers: list[dict] = []
    threads = [threading.Thread(target=lambda: answers.append(invoke("flight", "cancel", booking()))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(answer["released"] for answer in answers) == [False, True]
    assert {answer["status"] for answer in answers} == {"CANCELLED"}
    inventory = table.get_item(Key={"pk": "inventory#NH101"})["Item"]
    assert (inventory["available"], inventory["capacity"]) == (5, 5)
