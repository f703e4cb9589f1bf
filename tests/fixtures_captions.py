"""Fixtures for the captioning tests: a running fake OpenAI-compatible server and
a scanned copy of the example dataset. Loaded automatically by conftest.py."""

from __future__ import annotations

import pytest

from fluxgym_coach.dataset import Dataset
from fluxgym_coach.testing.fake_openai import FakeOpenAIServer


@pytest.fixture
def fake_openai():
    """A fake OpenAI-compatible server with vision on 127.0.0.1 (model ``fake-vision``)."""
    with FakeOpenAIServer(("fake-vision", "text-only")) as server:
        yield server


@pytest.fixture
def scanned_example(example_dataset):
    """``Dataset`` of a scanned copy of examples/dataset (6 images, 2 captions)."""
    ds = Dataset(example_dataset)
    ds.scan()
    yield ds
    ds.close()
