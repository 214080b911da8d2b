"""search: find the smallest, fastest artifact that fits a phone at a quality floor (`pocketfit fit`).

Built so far: the search's order and early stop on estimated candidates (frontier.py). Not yet:
the candidates' estimates from a model, their export and measurement, the command (issue #19).
"""

from .frontier import BITS, Estimate, Goal, Knobs, Search

__all__ = ["BITS", "Estimate", "Goal", "Knobs", "Search"]
