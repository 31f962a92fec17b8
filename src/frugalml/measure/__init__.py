"""Measure: what a run costs — time, memory, energy (read or estimated, always labelled), $, CO2.

``track`` meters Python code, ``run_command`` meters another program's process tree,
``time_calls`` times repeated calls (warm-up apart, percentiles), ``prices.resolve`` says what
an instance-hour and a kWh cost, ``bootstrap`` gives the paired interval of a quality
difference between two models scored on the same rows (and of a median timing ratio).
"""

from frugalml.measure.prices import Price, resolve
from frugalml.measure.timing import LatencyStats, device_sync, time_calls
from frugalml.measure.track import Run, UsageMeter, track

__all__ = [
    "LatencyStats",
    "Price",
    "Run",
    "UsageMeter",
    "device_sync",
    "resolve",
    "time_calls",
    "track",
]
