"""Guardrail options shared by the commands that run work (measure/guard.py)."""

from __future__ import annotations

from typing import Annotated

import typer

MaxUsdOpt = Annotated[
    float | None,
    typer.Option("--max-usd", help="Stop the job when its cost reaches this many dollars."),
]
MaxMinutesOpt = Annotated[
    float | None,
    typer.Option("--max-minutes", help="Stop the job after this many minutes (fractions ok)."),
]
MaxEnergyOpt = Annotated[
    float | None,
    typer.Option("--max-energy-kwh", help="Stop the job when its energy reaches this (kWh)."),
]
IdleTimeoutOpt = Annotated[
    float | None,
    typer.Option("--idle-timeout", help="Stop the job after this many seconds below --idle-below."),
]
IdleBelowOpt = Annotated[
    float,
    typer.Option("--idle-below", help="Idle means CPU use below this % of one CPU."),
]
GraceOpt = Annotated[
    float,
    typer.Option("--grace", help="Seconds between SIGTERM and SIGKILL when a limit stops it."),
]
