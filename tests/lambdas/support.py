"""What the handler tests share: the tables and what they hold, the contract and the execution the handlers run
under, and Lambda's context object."""

from booking_saga.contract import Contract

TABLES = {"flight": "flights", "hotel": "hotels", "payment": "payments"}
PAYMENT_LIMIT = 100_000  # in JPY
# Currencies without a minor unit and with two decimals: an amount with three decimals is invalid in every one.
CONTRACT = Contract.with_limits({"JPY": PAYMENT_LIMIT, "USD": 700, "EUR": 650}, chaos_enabled=True)
NAMESPACE = "BookingSagaTest"
# The execution the state machine names in every invocation ($$.Execution.Id): it owns what is reserved.
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:BookingSaga:trip-0001"


def held(dynamodb) -> dict[str, object]:
    """What each service's table holds: its booking records, and what is left of each resource."""
    contents = {}
    for service, table in TABLES.items():
        for item in dynamodb.Table(table).scan()["Items"]:
            if item["pk"].startswith("booking#"):
                contents[f"{service}:{item['pk']}"] = item["status"]
            elif item["pk"].startswith("inventory#"):
                contents[f"{service}:{item['pk']}"] = int(item["available"])
    return contents


class LambdaContext:
    """The parts of Lambda's context object that Powertools and the handlers read."""

    function_name = "test-function"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    memory_limit_in_mb = 256
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 100
