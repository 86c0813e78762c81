"""Typed ranges for stage hyper-parameters (alignment methods, gap statistics, gap dynamics).

A config key's *name* says what it is (``chunk_rows`` is a row count everywhere), so one table per
stage maps names to a :class:`Rule`; keys without an entry get the type of their default. Every
violation is a :class:`ParamError` naming the key, raised before any stage reads or writes data.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from modgap.errors import ConfigError


class ParamError(ConfigError, ValueError):
    """A hyper-parameter has the wrong type or is out of range; ``key`` is its name.

    Also a ``ValueError``, as scikit-learn's own parameter errors are (its ``set_params`` checks expect one).
    """

    def __init__(self, key: str, reason: str, label: str = "") -> None:
        self.key, self.reason = key, reason
        super().__init__(f"{label}: {key} {reason}" if label else f"{key}: {reason}")


@dataclass(frozen=True)
class Rule:
    """``kind`` is int | number | bool | str | int_list | number_list | str_list | any."""

    kind: str
    lo: float | None = None
    lo_open: bool = False
    hi: float | None = None
    hi_open: bool = False
    nullable: bool = False

    def describe(self) -> str:
        text = {"int": "an integer", "number": "a number", "bool": "true or false", "str": "a string"}.get(
            self.kind, f"a list of {self.kind.split('_')[0]}s"
        )
        if self.lo is not None:
            text += f" {'>' if self.lo_open else '>='} {self.lo:g}"
        if self.hi is not None:
            text += f"{' and' if self.lo is not None else ''} {'<' if self.hi_open else '<='} {self.hi:g}"
        return text + (" (or null)" if self.nullable else "")


def Int(lo: float | None = None, *, nullable: bool = False) -> Rule:
    return Rule("int", lo=lo, nullable=nullable)


def Num(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    nullable: bool = False,
) -> Rule:
    return Rule("number", lo=lo, lo_open=lo_open, hi=hi, hi_open=hi_open, nullable=nullable)


POSITIVE = Num(0, lo_open=True)
NON_NEGATIVE = Num(0)
COUNT = Int(1)
SEED = Int(0)
FRACTION = Num(0, 1, lo_open=True)  # (0, 1]: an energy threshold of 0 selects nothing


def infer_rule(default: Any) -> Rule:
    """The type a key's default implies (None says nothing: any value)."""
    if isinstance(default, bool):
        return Rule("bool")
    if isinstance(default, int):
        return Rule("int")
    if isinstance(default, float):
        return Rule("number")
    if isinstance(default, str):
        return Rule("str")
    if isinstance(default, list | tuple) and default and all(isinstance(v, int) for v in default):
        return Rule("int_list")
    if isinstance(default, list | tuple) and default and all(isinstance(v, int | float) for v in default):
        return Rule("number_list")
    return Rule("any")


def _type_ok(kind: str, value: Any) -> bool:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_num = (is_int or isinstance(value, float)) and not isinstance(value, bool)
    if kind == "int":
        return is_int
    if kind == "number":
        return is_num and math.isfinite(float(value))
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind.endswith("_list"):
        item = kind.split("_")[0]
        item_kind = {"int": "int", "number": "number", "str": "str"}[item]
        return isinstance(value, list) and all(_type_ok(item_kind, v) for v in value)
    return True


def _range_ok(rule: Rule, value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if isinstance(v, str) or v is None:
            continue
        if rule.lo is not None and (v <= rule.lo if rule.lo_open else v < rule.lo):
            return False
        if rule.hi is not None and (v >= rule.hi if rule.hi_open else v > rule.hi):
            return False
    return True


def check_value(key: str, value: Any, rule: Rule, label: str = "") -> None:
    """Raise :class:`ParamError` unless ``value`` satisfies ``rule``."""
    if value is None and (rule.nullable or rule.kind == "any"):
        return
    if not (_type_ok(rule.kind, value) and _range_ok(rule, value)):
        raise ParamError(key, f"must be {rule.describe()}, got {value!r}", label)


def check_params(
    params: Mapping[str, Any], defaults: Mapping[str, Any], rules: Mapping[str, Rule], label: str = ""
) -> None:
    """Check every key of ``params`` against its named rule (or the type of its default)."""
    for key, value in params.items():
        rule = rules.get(key) or infer_rule(defaults.get(key))
        check_value(key, value, rule, label)


def merge_with_defaults(defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None, label: str) -> dict:
    """``defaults`` updated by ``overrides``; an unknown key is a :class:`ConfigError` naming it."""
    params = dict(defaults)
    for key, value in (overrides or {}).items():
        if key not in params:
            raise ConfigError(f"{label}: unknown key {key!r} (known: {', '.join(sorted(params))})")
        params[key] = value
    return params


@contextlib.contextmanager
def config_key(key: str) -> Iterator[None]:
    """Re-raise a parameter error inside the block as a ConfigError under the dotted ``key``."""
    try:
        yield
    except ParamError as exc:
        raise ConfigError(f"{key}.{exc.key}: {exc.reason}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from exc
