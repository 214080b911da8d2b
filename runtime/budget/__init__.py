"""pocketfit.runtime.budget: release-pipeline checks from a budget file.

    from pocketfit.runtime import budget
    b = budget.load("pocketfit.toml")                 # validated; errors name FILE:LINE and the key path
    results = budget.run(b, jobs=2)                   # builds, measures, judges every model x device x limit
    print(budget.render("markdown", results))         # table, json, junit, markdown, html
    raise SystemExit(results.exit_code)               # 0 pass, 1 a limit broken, 2 bad input, 3 environment
"""

from .checks import build, run
from .config import Budget, BudgetFileError, Limits, find, load, schema
from .formats import names as format_names
from .formats import render
from .results import Cell, Check, Results, Status

__all__ = ["Budget", "BudgetFileError", "Cell", "Check", "Limits", "Results", "Status", "build", "find", "format_names",
           "load", "render", "run", "schema"]
