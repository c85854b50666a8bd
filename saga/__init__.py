"""The `saga` command and the tooling around the deployed saga: the local cloud, synth, the catalog, the demo.

It shares the Lambda code's own package, ``booking_saga`` (``lambdas/booking_saga``: the booking
contract, the ledger's item layout, reading executions), instead of copying it.
"""
