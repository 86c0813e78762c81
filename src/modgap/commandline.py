"""Building ``modgap`` subcommands: one formatter that shows defaults, one way to add a command.

A leaf module, so that the stage packages' ``commands`` modules can use it without importing
``modgap.cli``, which assembles them.
"""

from __future__ import annotations

import argparse
from typing import Any


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``(default: X)`` after each option's help, except where it would say nothing: no default (None),
    an off flag (False), an empty list, or a help text that already states its default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if default is None or default is False or (isinstance(default, list) and not default) or "(default" in text:
            return text
        return super()._get_help_string(action)


def add_command(subparsers: Any, name: str, *, help: str, description: str, **kwargs: Any) -> argparse.ArgumentParser:
    """``subparsers.add_parser(name, ...)`` with a one-line ``help`` (the parent's command list), a
    ``description`` (the command's own ``--help``) and the defaults-showing :class:`HelpFormatter`."""
    kwargs.setdefault("formatter_class", HelpFormatter)
    return subparsers.add_parser(name, help=help, description=description, **kwargs)
