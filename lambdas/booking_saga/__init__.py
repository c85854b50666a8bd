"""The saga's runtime code, shared by every Lambda handler and by the `saga` tooling.

- ``contract``: the booking document and the errors a step may end in;
- ``ledger``: one service's reservations and inventory in its DynamoDB table;
- ``service``: what every reserve and cancel handler does around its ledger;
- ``executions``: bookings as Step Functions executions, and how one ended;
- ``observability``: Powertools logging, tracing and metrics for every handler.
"""
