"""The benchmark-task contract: what a task builds, how its answers are parsed and scored, what it reports.

A task is one class in one module, registered with :func:`modgap.evaluation.tasks.register_task`.
The suite, the runner, the scorer, the evaluation report and the workflow read everything about a
task from it, so adding a benchmark touches its module and the config only (``eval.suite`` keys
named in :attr:`Task.defaults`, ``eval.max_new_tokens.<name>``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from modgap.evaluation.items import BenchItem, LabelSimilarity

Record = Mapping[str, Any]  # a BenchItem's fields plus output, parsed, correct


@dataclass(frozen=True)
class SuiteContext:
    """What every task's builder sees: the held-out images in the suite's seeded order."""

    images: Sequence[Mapping[str, Any]]  # id, path, references, labels
    vocabulary: Sequence[str]  # labels of the training split (else of the held-out images), sorted
    popular: Sequence[str]  # the vocabulary by training frequency, most frequent first
    params: Mapping[str, Any]  # eval.suite merged over every task's defaults
    similarity: LabelSimilarity | None
    frequencies: Mapping[str, int] | None = None  # training-split count of each label

    @property
    def labelled(self) -> list[Mapping[str, Any]]:
        return [img for img in self.images if img["labels"]]


class Task:
    """One benchmark. Subclasses set the class attributes and implement :meth:`build` and :meth:`score`."""

    name: ClassVar[str]
    # Position in the suite and in every table (ties by name); built-ins: caption 10, POPE 20, MC 30.
    order: ClassVar[int] = 100
    # This task's keys in eval.suite with their defaults (prefixed by the task's name by convention).
    defaults: ClassVar[dict[str, Any]] = {}
    max_new_tokens: ClassVar[int] = 16
    # Rule-scored: the answer is one of a few options (scored by constrained choice, counted in the
    # parse rate and the benchmark average, asked under every visual control and of the base LLM).
    # Otherwise generative (captioning): asked with real images, and of the Stage-1 probes.
    rule_scored: ClassVar[bool] = False
    # The key of score() that enters the benchmark average (rule-scored tasks only).
    average_key: ClassVar[str | None] = None

    def check_params(self, params: Mapping[str, Any], has_similarity: bool) -> None:
        """Raise ConfigError (naming the eval.suite key) for a bad value of this task's keys."""

    def build(self, ctx: SuiteContext) -> list[BenchItem]:
        raise NotImplementedError

    def parse(self, output: str, options: Sequence[str]) -> str | None:
        """The answer read from free text (None: unreadable)."""
        return output.strip()

    def options(self, item_options: Sequence[str]) -> tuple[str, ...]:
        """The answers constrained choice picks among (rule-scored tasks)."""
        raise NotImplementedError(f"task {self.name!r} is not rule-scored")

    def is_correct(self, parsed: str | None, answer: str) -> bool:
        return parsed is not None and parsed.lower() == answer.lower()

    def score(self, rows: Sequence[Record], resamples: int, seed: int) -> dict[str, Any]:
        raise NotImplementedError

    def summary_key(self, item: BenchItem) -> str:
        """How suite_summary counts the item."""
        return self.name

    # --- what the evaluation report shows ------------------------------------------------------
    def summary(self, score: Mapping[str, Any] | None) -> dict[str, Any]:
        """This task's entries of a model's headline row (``{name}_{key}``), None where not scored."""
        return {}

    def detail(self, score: Mapping[str, Any] | None) -> dict[str, Any]:
        """Further per-variant entries of the headline row, after the average."""
        return {}

    def table_columns(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Its columns of the regime table, from a headline row."""
        return {}

    def units(self, records: Sequence[Record]) -> dict[str, dict[str, bool]]:
        """{unit: {key: correct}} that a McNemar test pairs between two models (rule-scored tasks)."""
        return {}

    def test_columns(self, mcnemar: Mapping[str, Any]) -> dict[str, Any]:
        """Its p-value columns of the regime table, from the McNemar results by unit."""
        return {}

    def image_outcomes(self, records: Sequence[Record]) -> dict[str, Any]:
        """{image id: outcome} that the benchmark-average bootstrap resamples by image."""
        return {}

    def average_of(self, outcomes: Sequence[Any]) -> float | None:
        """This task's accuracy over a resample of image outcomes (None: none present)."""
        return None
