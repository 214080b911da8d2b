"""JSON: Results.to_dict(), documented by pocketfit/schemas/budget-report.schema.json."""

import json

from ..results import Results
from . import register


@register("json")
def render(results: Results) -> str:
    return json.dumps(results.to_dict(), indent=2, ensure_ascii=False) + "\n"
