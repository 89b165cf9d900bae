"""The command line: every `nas ...` shown in README.md and docs/ parses with the real parser, and the
options shared by several commands mean the same everywhere."""

import re
import shlex
from pathlib import Path

import pytest

from nas import cli
from nas.config import SearchConfig

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shown_commands(text: str) -> list[str]:
    """`nas ...` lines of the fenced and indented code, continuation lines joined and comments dropped."""
    code = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", text, re.S))
    code += "\n" + "\n".join(line for line in text.splitlines() if line.startswith("    "))
    code = re.sub(r"\\\n\s*", " ", code)
    return [line.strip().split("  #")[0].split(" # ")[0].strip() for line in code.splitlines()
            if line.strip().startswith("nas ")]


def as_used(synopsis: str) -> list[str]:
    """A synopsis as a user would type it: [optional] parts kept, the first of a|b alternatives taken."""
    words = shlex.split(synopsis.replace("[", " ").replace("]", " "))[1:]
    return [word.split("|")[0] for word in words]


COMMANDS = sorted({(path.name, command) for path in DOCUMENTS for command in shown_commands(path.read_text())})


def test_the_documents_show_commands():
    assert len(COMMANDS) >= 20 and {c.split()[1] for _, c in COMMANDS} >= {"search", "front", "export", "predict"}


@pytest.mark.parametrize("document, command", COMMANDS, ids=[f"{d}: {c[:60]}" for d, c in COMMANDS])
def test_every_documented_command_parses(document, command):
    args = cli.parser().parse_args(as_used(command))
    assert callable(args.func)


def test_shared_options_mean_the_same_in_every_command():
    parser = cli.parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse keeps subcommands only here
    for name in ("search", "front", "plot", "export", "dashboard"):
        study, storage = (commands[name]._option_string_actions[flag] for flag in ("--study", "--storage"))
        assert study.required == (name != "search") and "sqlite:///studies/<study>.db" in storage.help
    for name in ("spaces", "data", "train", "search", "front", "export", "evaluate", "predict"):
        action = commands[name]._option_string_actions["--format"]
        assert action.default == "table" and {"table", "json"} <= set(action.choices)


def test_search_defaults_are_the_configs():
    args = cli.parser().parse_args(["search", "--space", "resnet_like"])
    assert (args.epochs, args.subset, args.rungs, args.eta, args.seed) == (
        SearchConfig.epochs, SearchConfig.subset, SearchConfig.rungs, SearchConfig.eta, SearchConfig.seed)
    assert args.objectives == ",".join(SearchConfig.objectives)
