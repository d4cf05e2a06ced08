"""The root command group, which imports a command's module only when that command runs.

Importing every command's module took 0.9 s before any command began: ``lychgate serve``
brings the authorization server (FastAPI) and the gateway, ``lychgate app`` the store
(SQLAlchemy). ``lychgate device approve`` needs neither. Each command is named here by the
module and attribute that define it, and loaded the first time it is looked up to run.
Its name is known before: a mistyped command is still answered with the close ones. Its
one-line summary is known before too, so that ``lychgate --help`` lists every command from
stand-ins that carry only the name and the summary, without loading any (1.4 s before, 0.1 s
now): a test renders the listing both ways and compares them, so the two summaries cannot
drift apart.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, ClassVar, NamedTuple

import typer
from typer.core import TyperCommand, TyperGroup

# Typer carries its own copy of click (typer._click), whose Command class it does not export.
Command = Any


class Lazy(NamedTuple):
    """A command not yet loaded: where it is defined, and the summary ``--help`` lists."""

    target: str  # "package.module:attribute"
    summary: str  # the first paragraph of the command's help


def load_command(name: str, target: str) -> Command:
    """The click command that ``target`` (``"package.module:attribute"``) defines: a Typer app
    (a group of commands) or a function (one command, named ``name``)."""
    module_name, _, attribute = target.partition(":")
    defined = getattr(importlib.import_module(module_name), attribute)
    if isinstance(defined, typer.Typer):
        group = typer.main.get_group(defined)
        group.name = name  # what ``--help`` lists it as
        return group
    single = typer.Typer(add_completion=False)
    single.command(name)(defined)
    return typer.main.get_command(single)


class LazyCommands(MutableMapping[str, Command]):
    """A group's commands by name, in order: each loaded from its target when first read."""

    def __init__(self, targets: Mapping[str, Lazy], loaded: Mapping[str, Command]) -> None:
        self._targets = dict(targets)
        self._loaded = dict(loaded)
        self._names = list(dict.fromkeys([*targets, *loaded]))

    def __getitem__(self, name: str) -> Command:
        command = self._loaded.get(name)
        if command is None:
            command = self._loaded[name] = load_command(name, self._targets[name].target)
        return command

    def listed(self) -> dict[str, Command]:
        """Every command for a listing, in order: those loaded as they are, the others as
        stand-ins that carry their name and summary and cannot run."""
        return {
            name: self._loaded.get(name) or TyperCommand(name, help=self._targets[name].summary)
            for name in self._names
        }

    def __setitem__(self, name: str, command: Command) -> None:
        if name not in self._targets and name not in self._loaded:
            self._names.append(name)
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        self._names.remove(name)
        self._targets.pop(name, None)
        self._loaded.pop(name, None)

    def __contains__(self, name: object) -> bool:  # without loading, as Mapping's would
        return name in self._targets or name in self._loaded

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class LazyGroup(TyperGroup):
    """A Typer group whose subclass names its commands in ``lazy``: ``{name: Lazy(...)}``."""

    lazy: ClassVar[Mapping[str, Lazy]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands: LazyCommands = LazyCommands(self.lazy, self.commands)
        self._listing: dict[str, Command] | None = None  # while ``--help`` lists the commands

    def list_commands(self, ctx: Any) -> list[str]:  # Any: typer's own click
        return list(self.commands)  # the names, without loading what they name

    def get_command(self, ctx: Any, cmd_name: str) -> Command | None:
        if self._listing is not None:
            return self._listing.get(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """The group's help, listing commands from their summaries: none is loaded for it."""
        self._listing = self.commands.listed()
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = None
