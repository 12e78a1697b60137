"""Shared test fixtures: the real corpora in ../shared/data and quiet, deterministic TensorFlow."""

import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_DEFAULT_DATA_DIR = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir():
    """The directory with Tiny Shakespeare and WikiText-2 (`LMZOO_DATA_DIR`, else ../shared/data)."""
    # Absolute, so that tests running in another directory (docs examples, subprocesses) find it too: the
    # README's command sets a relative LMZOO_DATA_DIR.
    path = pathlib.Path(os.environ.get("LMZOO_DATA_DIR", _DEFAULT_DATA_DIR)).resolve()
    if not (path / "tinyshakespeare" / "input.txt").exists():
        pytest.fail(f"Real corpora not found in {path}: set LMZOO_DATA_DIR to the shared data directory.")
    return path


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same seeds, so tiny training runs are reproducible."""
    import keras

    keras.utils.set_random_seed(1234)
    yield
