"""Shared test settings: no network, no hub downloads, deterministic CPU threads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread():
    # Small GEMMs with 2 OpenBLAS threads on a shared, loaded 2-core box spin-wait (~100x slower).
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def project_root() -> Path:
    return PROJECT_ROOT


# Shared by the evaluation runner and constrained-choice tests (tests/_eval_fixtures.py).
@pytest.fixture
def items():
    from _eval_fixtures import manifest, word_similarity
    from modgap.evaluation.suite import build_suite

    return build_suite(
        manifest(), params={"caption_items": 10, "pope_items": 12, "choice_items": 8}, similarity=word_similarity
    )


@pytest.fixture
def fake_generation(monkeypatch):
    """The runner calls ``_eval_fixtures.fake_generate`` instead of a model."""
    import modgap.mllm.generate as generate_module
    from _eval_fixtures import fake_generate

    monkeypatch.setattr(generate_module, "generate", fake_generate)
