"""The benchmark behind BENCHMARKS.md: ``python -m bench`` (``--help`` for its options).

Local speed of the saga on the embedded local cloud against moto's bare interpreter,
AWS cost per million bookings counted from real executions, and the handlers' cold start.
"""
