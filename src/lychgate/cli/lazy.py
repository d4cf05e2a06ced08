"""The root command group, which imports a command's module only when that command runs.

Importing every command's module took 0.9 s before any command began: ``lychgate serve``
brings the authorization server (FastAPI) and the gateway, ``lychgate app`` the store
(SQLAlchemy). ``lychgate device approve`` needs neither. Each command is named here by the
module and attribute that define it, and loaded the first time it is looked up: to run it, or
to list it in ``--help`` (which therefore still loads them all). Its name is known before:
a mistyped command is still answered with the close ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, ClassVar

import typer
from typer.core import TyperGroup

# Typer carries its own copy of click (typer._click), whose Command class it does not export.
Command = Any


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

    def __init__(self, targets: Mapping[str, str], loaded: Mapping[str, Command]) -> None:
        self._targets = dict(targets)
        self._loaded = dict(loaded)
        self._names = list(dict.fromkeys([*targets, *loaded]))

    def __getitem__(self, name: str) -> Command:
        command = self._loaded.get(name)
        if command is None:
            command = self._loaded[name] = load_command(name, self._targets[name])
        return command

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
    """A Typer group whose subclass names its commands in ``lazy``: ``{name: target}``."""

    lazy: ClassVar[Mapping[str, str]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(self.lazy, self.commands)
