"""click, made to print like the rest of ``appusers``: ``usage:`` lines, epilogs as written."""

from __future__ import annotations

from typing import Any

import click

__all__ = ["CONTEXT", "Command", "Context", "Formatter", "Group"]

#: context_settings of every command: -h as well as --help.
CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Formatter(click.HelpFormatter):
    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        super().write_usage(prog, args, "usage: " if prefix is None else prefix)

    def write_raw(self, text: str) -> None:
        self.write_paragraph()
        self.write(text if text.endswith("\n") else text + "\n")


class Context(click.Context):
    formatter_class = Formatter


class Command(click.Command):
    """A command whose epilog (examples, exit codes) is printed as written, not re-wrapped."""

    context_class = Context

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.epilog and isinstance(formatter, Formatter):
            formatter.write_raw(self.epilog)


class Group(click.Group):
    context_class = Context
    command_class = Command

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.epilog and isinstance(formatter, Formatter):
            formatter.write_raw(self.epilog)


Group.group_class = Group
