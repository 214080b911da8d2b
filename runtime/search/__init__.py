"""search: find the smallest, fastest artifact that fits a phone at a quality floor (`pocketfit fit`).

Built so far (issue #19): a candidate's estimate before export, a floor of its bytes and memory
and its phone latency from its shape (estimate.py); the search's order, its skips and early
stop, and the Pareto set (frontier.py). Not yet: the candidate space from a model, the export,
measurement and held-out quality of each candidate, the cache a killed search resumes from,
parallel and Ray executors, the command.
"""

from .frontier import BITS, Estimate, Goal, Knobs, Search

__all__ = ["BITS", "Estimate", "Goal", "Knobs", "Search"]
