"""Fake upstreams speaking the real wire protocols, with fault knobs, for demo, tests and bench.

Each simulated channel lives under its own path prefix, `/<channel>/v1/...`, so one simulator
serves many channels and a fault set on one channel leaves the others healthy.
"""
