import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED_ZIP = ROOT.parent / "shared" / "data" / "anime-faces-96.zip"


@pytest.fixture(autouse=True)
def animegan_home(tmp_path_factory, monkeypatch):
    """Every test writes into its own home folder, never into ~/.animegan."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("ANIMEGAN_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def shared_zip():
    if not SHARED_ZIP.exists():
        pytest.skip(f"real data set not present at {SHARED_ZIP} (only on developer machines)")
    return SHARED_ZIP
