"""Capacity and latency benchmarks: many simulated calls against a server in another process.

`agent-runtime bench` (or `python benchmarks/run.py`) starts `agent-runtime serve` with the
zero-latency stand-in engines, places N concurrent calls through the carrier simulator and
reports turn latency, barge-in latency, CPU and memory per call. See benchmarks/README.md.
"""
