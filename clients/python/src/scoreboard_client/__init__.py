"""Async Python client of the Scoreboard service: the models of its requests and answers."""

from . import models

__all__ = ["models"]
