"""Fixtures of the dataset-registration tests (their file writers are in dataset_files.py)."""
import pytest

from mqformer_d2.data.datasets import datasets_root, register_all


@pytest.fixture(scope="module", autouse=True)
def restore_default_registrations():
    """Tests re-root registrations at tmp folders; put the default root back after each module."""
    yield
    register_all(datasets_root())
