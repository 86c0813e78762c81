"""Registered benchmark tasks, in suite order: the built-in caption, POPE and multiple choice.

Every module of this package is imported on first use and registers its task with
``@register_task``, so a new benchmark is one new module here (plus its config values); tests
register and ``unregister_task`` their own. Every consumer iterates :func:`registered_tasks`
(sorted by :attr:`Task.order`, then name), so no list of tasks is written anywhere else.
"""

from __future__ import annotations

import importlib
import pkgutil

from modgap.errors import ConfigError
from modgap.evaluation.tasks.base import SuiteContext, Task

_REGISTRY: dict[str, Task] = {}


def register_task(cls: type[Task]) -> type[Task]:
    if cls.name in _REGISTRY:
        raise ConfigError(f"benchmark task {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls()
    return cls


def unregister_task(name: str) -> None:
    _REGISTRY.pop(name, None)


def registered_tasks() -> list[Task]:
    return sorted(_REGISTRY.values(), key=lambda t: (t.order, t.name))


def task_names() -> list[str]:
    return [t.name for t in registered_tasks()]


def get_task(name: str) -> Task:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown benchmark task {name!r}; known: {task_names()}") from None


def rule_scored_tasks() -> list[Task]:
    return [t for t in registered_tasks() if t.rule_scored]


def generative_tasks() -> list[Task]:
    return [t for t in registered_tasks() if not t.rule_scored]


def _import_task_modules() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")


_import_task_modules()

__all__ = [
    "SuiteContext",
    "Task",
    "generative_tasks",
    "get_task",
    "register_task",
    "registered_tasks",
    "rule_scored_tasks",
    "task_names",
    "unregister_task",
]
