"""The ``fakesysfs`` argument parser read back as data: each command with its options,
positional arguments and subcommands, for the generated shell completion and man page
(``fakesysfs completion``, ``fakesysfs manpage``). Made from the one parser, so neither can
drift from what the command accepts."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

__all__ = ["Argument", "Command", "Option", "command_tree", "value_kind"]

#: What a shell completes for a value: a file, a directory, a command name, a fixed choice
#: (``choices``), a subcommand name, or nothing in particular.
FILE, DIR, PROGRAM, CHOICE, SUBCOMMAND, ANY = "file", "dir", "command", "choice", "subcommand", "any"


@dataclass(slots=True)
class Option:
    flags: list[str]
    help: str
    #: Whether the option takes a value (``--state FILE``), what it is and what it may be.
    takes_value: bool = False
    metavar: str = ""
    kind: str = ANY
    choices: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Argument:
    """A positional argument; ``repeats`` if it takes any number of words (``KEY=VALUE...``,
    ``COMMAND [ARGS...]``)."""

    metavar: str
    help: str
    kind: str = ANY
    choices: list[str] = field(default_factory=list)
    repeats: bool = False


@dataclass(slots=True)
class Command:
    #: The words that name it: ``["fakesysfs", "ctl", "fault"]``.
    path: list[str]
    help: str
    description: str
    usage: str
    options: list[Option] = field(default_factory=list)
    arguments: list[Argument] = field(default_factory=list)
    #: Its subcommands, in the order ``--help`` lists them (the argument of kind SUBCOMMAND).
    subcommands: list[Command] = field(default_factory=list)

    def walk(self) -> list[Command]:
        """This command and every command below it, depth first."""
        return [self] + [c for sub in self.subcommands for c in sub.walk()]


def value_kind(metavar: str, nargs: object = None) -> str:
    """What a value named ``metavar`` is, for completion: files for FILE, PATH, SNAPSHOT and
    ``*.toml``, directories for DIR and MOUNTPOINT, a program for a REMAINDER COMMAND."""
    name = metavar.upper()
    if nargs == argparse.REMAINDER and name.startswith("COMMAND"):
        return PROGRAM
    if "DIR" in name or "MOUNTPOINT" in name:
        return DIR
    if any(word in name for word in ("FILE", "PATH", "SNAPSHOT", ".TOML")):
        return FILE
    return ANY


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if text == argparse.SUPPRESS:
        return ""
    return text.replace("%(default)s", str(action.default)).replace("%(prog)s", "fakesysfs").replace("%%", "%")


def _metavar(action: argparse.Action) -> str:
    if isinstance(action.metavar, str):
        return action.metavar
    if isinstance(action.metavar, tuple):
        return " ".join(action.metavar)
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return action.dest.upper()


def _usage(parser: argparse.ArgumentParser) -> str:
    """The usage ``--help`` shows, wrapped at 78 columns whatever the terminal's width."""
    formatter = argparse.HelpFormatter(parser.prog, width=78)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return formatter.format_help().strip("\n")


def command_tree(parser: argparse.ArgumentParser, path: list[str] | None = None, help_text: str = "") -> Command:
    """``parser`` and its subparsers as a ``Command`` tree."""
    path = path or [parser.prog]
    command = Command(path, help_text, parser.description or "", _usage(parser))
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            names = list(action.choices)  # a dict: name -> parser
            command.arguments.append(Argument(_metavar(action), _help(action), SUBCOMMAND, names))
            for name, sub in action.choices.items():
                command.subcommands.append(command_tree(sub, [*path, name], helps.get(name, "")))
        elif action.option_strings:
            if action.help == argparse.SUPPRESS:
                continue
            takes_value = action.nargs != 0
            choices = [str(c) for c in action.choices] if action.choices is not None else []
            metavar = _metavar(action) if takes_value else ""
            kind = CHOICE if choices else value_kind(metavar) if takes_value else ANY
            command.options.append(Option(list(action.option_strings), _help(action), takes_value, metavar, kind,
                                          choices))
        else:
            choices = [str(c) for c in action.choices] if action.choices is not None else []
            metavar = _metavar(action)
            kind = CHOICE if choices else value_kind(metavar, action.nargs)
            repeats = action.nargs in ("*", "+", argparse.REMAINDER)
            command.arguments.append(Argument(metavar, _help(action), kind, choices, repeats))
    return command
