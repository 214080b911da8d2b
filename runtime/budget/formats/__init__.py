"""Report formats: one module each, every one a pure function Results -> text.

    @register("markdown")
    def render(results: Results) -> str: ...

Adding a format is one new module imported below.
"""

from collections.abc import Callable

from ..results import Results

_RENDERERS: dict[str, Callable[[Results], str]] = {}


def register(name: str):
    def add(render: Callable[[Results], str]) -> Callable[[Results], str]:
        _RENDERERS[name] = render
        return render

    return add


def render(name: str, results: Results) -> str:
    return _RENDERERS[name](results)


def names() -> list[str]:
    return list(_RENDERERS)


from . import table, json, junit, markdown, html  # noqa: E402,F401 - each registers itself
