"""Load generator and baselines for Scoreboard: `python -m bench run --help`."""
