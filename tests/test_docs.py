"""Docs that cannot drift: every relative link in README.md and docs/ names a file that exists, and
every `pocketfit …` command they show parses against the CLI's real commands, options and choices."""

import re
import shlex
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         *(ROOT / d / "README.md" for d in ("benchmarks", "android-demo", "examples/release-gate"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # a URL: not checked offline
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


# --- every `pocketfit …` command shown in the docs parses against the CLI's real options ---------

SHELL_BLOCKS = {"sh", "bash", "shell", "console", "yaml"}
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*([=./|].*)?$")  # ARTIFACT, OUT/, FILE.png, KEY=VALUE, KB|random
COMMAND = re.compile(r"^\s*(?:\$ |- run: |run: )?(?:\S*/)?pocketfit\s+(.*)$")
INLINE = re.compile(r"`(?:\S*/)?pocketfit ([^`]+)`")


def _commands(page: Path) -> list[tuple[int, str]]:
    """(line number, the words after `pocketfit`) of every command in a shell block or inline code."""
    found, fence, current = [], None, None
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            fence = None if fence is not None else line.lstrip()[3:].strip()
            current = None
            continue
        if fence is None:
            found += [(number, m.group(1)) for m in INLINE.finditer(line)]
            continue
        # An untagged block holds commands or their output: a command is `pocketfit word`, one space
        # apart, where a table of results pads `pocketfit` into a column.
        shell = fence in SHELL_BLOCKS or line.lstrip().startswith("$ ") or re.match(r"\s*pocketfit [a-z]", line)
        if current is not None and (found[current][1].endswith("\\") or re.match(r"\s+(\[|--?[a-z])", line)):
            n, words = found[current]  # a continued line: `\`, or a synopsis's indented `[--more]`
            found[current] = (n, words.removesuffix("\\") + " " + line.strip())
            continue
        current = None
        if shell and (m := COMMAND.match(line)):
            found.append((number, m.group(1).strip()))
            current = len(found) - 1
    return found


def _words(text: str) -> list[str]:
    """The command's words, the synopsis's brackets, `|` separators and `...` dropped."""
    words = shlex.split(text, comments=True)
    words = [w.strip("[]") for w in words]
    return [w for w in words if w and w not in ("|", "...", "…")]


def _problems(words: list[str]) -> list[str]:
    from pocketfit.cli import cli

    while words and words[0] in ("--verbose", "-h", "--help", "--version"):
        words = words[1:]
    if not words or PLACEHOLDER.match(words[0]):
        return []  # `pocketfit COMMAND --help`
    if words[0] not in cli.commands:
        return [f"no command {words[0]!r} (pocketfit has {', '.join(sorted(cli.commands))})"]
    command = cli.commands[words[0]]
    options = {name: p for p in command.params if isinstance(p, click.Option) for name in p.opts + p.secondary_opts}
    options["--help"] = options["-h"] = None
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    most = None if any(a.nargs == -1 for a in arguments) else sum(a.nargs for a in arguments)
    problems, positionals, rest = [], 0, words[1:]
    while rest:
        word, rest = rest[0], rest[1:]
        if not word.startswith("-") or word == "-":
            positionals += 1
            continue
        name, eq, value = word.partition("=")
        if name not in options:
            problems.append(f"`{words[0]}` has no option {name} (it has {', '.join(sorted(o for o in options if o.startswith('--')))})")
            if rest and PLACEHOLDER.match(rest[0]):
                rest = rest[1:]  # its value, not an argument
            continue
        option = options[name]
        if option is None or option.is_flag or option.count:
            continue
        if not eq:
            if not rest:
                continue  # prose naming the option: `pocketfit profile --device`
            if rest[0].startswith("-"):
                problems.append(f"{name} takes a value")
                continue
            value, rest = rest[0], rest[1:]
        problems += _bad_value(name, option, value)
    if most is not None and positionals > most:
        problems.append(f"`{words[0]}` takes at most {most} argument(s), the docs give {positionals}")
    return problems


def _bad_value(name: str, option, value: str) -> list[str]:
    """A literal value the option's type refuses (placeholders such as N or FILE pass)."""
    if PLACEHOLDER.match(value) or not isinstance(option.type, (click.Choice, click.types._NumberParamTypeBase)):
        return []
    bad = []
    for alternative in value.split("|"):  # a synopsis lists the choices: `--policy lru|two-list|pinned`
        if PLACEHOLDER.match(alternative):
            continue
        try:
            option.type.convert(alternative, option, None)
        except click.BadParameter:
            bad.append(f"{name} does not take {alternative!r}")
    return bad


DOCUMENTED = [(page, number, text) for page in PAGES for number, text in _commands(page)]


def test_the_docs_show_commands():
    assert len(DOCUMENTED) > 30
    assert {"export", "inspect", "profile", "check", "simulate", "devices"} <= {_words(t)[0] for _, _, t in DOCUMENTED}


@pytest.mark.parametrize("page, number, text", DOCUMENTED, ids=[f"{p.relative_to(ROOT)}:{n}" for p, n, _ in DOCUMENTED])
def test_documented_command_parses(page, number, text):
    problems = _problems(_words(text))
    assert not problems, f"{page.relative_to(ROOT)}:{number}: `pocketfit {text}`: {'; '.join(problems)}"


def test_every_command_and_option_is_in_the_cli_page():
    """The other direction: docs/cli.md shows each command with every one of its options."""
    from pocketfit.cli import cli

    shown = {}
    for _, text in _commands(ROOT / "docs" / "cli.md"):
        words = _words(text)
        shown.setdefault(words[0], set()).update(w.partition("=")[0] for w in words[1:] if w.startswith("-"))
    missing = []
    for name, command in cli.commands.items():
        if name not in shown:
            missing.append(name)
            continue
        missing += [f"{name} {p.opts[0]}" for p in command.params
                    if isinstance(p, click.Option) and not set(p.opts + p.secondary_opts) & shown[name]]
    assert not missing, f"docs/cli.md does not show: {', '.join(missing)}"


def test_quick_documented_commands_run():
    """Those that finish in a moment are run for real: the catalog and every command's --help."""
    from click.testing import CliRunner

    from pocketfit.cli import cli

    runner = CliRunner()
    quick = [["devices"]] + [[name, "--help"] for name in cli.commands]
    for args in quick:
        # --verbose: without it the CLI quiets third-party loggers for the rest of this process,
        # and the tests sharing this worker would inherit that
        result = runner.invoke(cli, ["--verbose", *args])
        assert result.exit_code == 0, (args, result.output)


def test_documented_make_targets_exist():
    """`make X` in a code span or block names a target of the Makefile (bench-device: not built yet)."""
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M))
    named = {(page.name, t) for page in PAGES for t in re.findall(r"`make ([a-z][\w-]*)", page.read_text(encoding="utf-8"))}
    named |= {(page.name, t) for page in PAGES for t in re.findall(r"^make ([a-z][\w-]*)", page.read_text(encoding="utf-8"), re.M)}
    missing = sorted((p, t) for p, t in named if t not in targets | {"bench-device"})
    assert not missing, f"no such make target: {missing}"
