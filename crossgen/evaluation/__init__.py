"""Measuring what ships: `evaluate` (`python -m crossgen.evaluate`, both directions against their baselines on the
held-out artist), `composition` (its composition, edit and diversity sections) and `bench` with `bench_server`
(`python -m crossgen.bench`, speed and memory).

May import every layer of the package; nothing imports it but the two command entry points and the tests.
"""
