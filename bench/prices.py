"""AWS list prices the cost model uses: one place, one date, so a price change is one edit.

US East (N. Virginia), on demand, without free tiers, volume tiers or savings plans.
Checked on the date below against the public pricing pages of each service
(aws.amazon.com/step-functions/pricing, /lambda/pricing, /dynamodb/pricing/on-demand,
/sqs/pricing, /eventbridge/pricing); DynamoDB's are those after its on-demand price cut of 2024-11-01.
"""

REGION = "us-east-1"
CHECKED = "2026-11-27"

# Step Functions Standard: every state entered is a transition, and so is every retry.
STATE_TRANSITION = 0.025 / 1_000
LAMBDA_REQUEST = 0.20 / 1_000_000
# Per GB-second of billed duration (rounded up to 1 ms), first volume tier.
LAMBDA_GB_SECOND = {"arm64": 0.0000133334, "x86_64": 0.0000166667}
DYNAMODB_WRITE_REQUEST_UNIT = 0.625 / 1_000_000
DYNAMODB_READ_REQUEST_UNIT = 0.125 / 1_000_000
# Standard queue; each 64 KB chunk of a request's payload is billed as one request.
SQS_REQUEST = 0.40 / 1_000_000
# Custom events put on an event bus; each 64 KB chunk of an event is billed as one.
EVENTBRIDGE_EVENT = 1.00 / 1_000_000


def as_json() -> dict:
    """The prices as the JSON report records them, in US dollars per unit."""
    return {
        "region": REGION,
        "checked": CHECKED,
        "usd_per_state_transition": STATE_TRANSITION,
        "usd_per_lambda_request": LAMBDA_REQUEST,
        "usd_per_lambda_gb_second": LAMBDA_GB_SECOND,
        "usd_per_dynamodb_write_request_unit": DYNAMODB_WRITE_REQUEST_UNIT,
        "usd_per_dynamodb_read_request_unit": DYNAMODB_READ_REQUEST_UNIT,
        "usd_per_sqs_request": SQS_REQUEST,
        "usd_per_eventbridge_event": EVENTBRIDGE_EVENT,
    }
