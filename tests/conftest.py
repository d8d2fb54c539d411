import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from captcha_lab.data.synthetic import ensure_synthetic

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "captcha_v2"
os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
QUIET = ["~callbacks.progress_bar", "hydra/job_logging=none", "hydra/hydra_logging=none"]


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_dir) -> Path:
    """A 3-epoch run on the 80 tiny captchas, trained by train.py as a user would."""
    run = tmp_path_factory.mktemp("tiny_run") / "run"
    done = run_script(
        "train.py", f"data.dir={tiny_dir}", "data.synthetic=0", "epochs=3", f"hydra.run.dir={run}", *QUIET
    )
    assert done.returncode == 0, done.stderr
    return run


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """80 synthetic captchas: enough for every split, fast to train on."""
    return ensure_synthetic(tmp_path_factory.mktemp("data") / "tiny", n=80, seed=1)


@pytest.fixture(scope="session")
def mixed_length_dir(tmp_path_factory) -> Path:
    """48 synthetic captchas with 4-, 5- and 6-character labels in one folder."""
    root = tmp_path_factory.mktemp("mixed")
    mixed = root / "mixed"
    mixed.mkdir()
    for length in (4, 5, 6):
        for image in ensure_synthetic(root / str(length), n=16, seed=length, length=length).glob("*.png"):
            image.rename(mixed / image.name)
    return mixed


@pytest.fixture
def make_cfg(tmp_path, tiny_dir):
    """Compose conf/train.yaml as train.py would, with the run dir in tmp_path."""

    def make(*overrides: str, config_name: str = "train"):
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            base = [f"data.dir={tiny_dir}", "data.synthetic=0", "epochs=1", "~callbacks.progress_bar"]
            cfg = compose(config_name, overrides=base + list(overrides), return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(tmp_path / "run")
            cfg.hydra.job.num = 0
        (tmp_path / "run").mkdir(exist_ok=True)
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield make
    GlobalHydra.instance().clear()
