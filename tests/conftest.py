from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    "The root of this checkout."
    return REPO
