"""Pytest fixtures shared by the test modules (plain helpers are in helpers.py)."""
import pytest
from helpers import tiny_shapes_benchmark


@pytest.fixture(scope="module")
def tiny_shapes(tmp_path_factory):
    """A tiny copy of the synthetic benchmark, registered as mqformer_shapes_* while the module's
    tests run; its root folder."""
    with tiny_shapes_benchmark(str(tmp_path_factory.mktemp("shapes"))) as root:
        yield root
