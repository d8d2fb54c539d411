"""eval.py's job: a checkpoint's metrics on the split its run trained with (or on other data),
per-character scores and figures, in eval.json."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from captcha_lab.analysis.evaluate import analyse
from captcha_lab.atomic import write_json
from captcha_lab.cli.jobs import job_errors, log_summary, make, override_keys
from captcha_lab.cli.process import set_up_for_job
from captcha_lab.cli.validation import check_checkpoint_file, check_keys, require, require_at_least_one
from captcha_lab.data.datamodule import CaptchaDataModule
from captcha_lab.errors import ConfigError, first_line
from captcha_lab.models.checkpoint import read_checkpoint
from captcha_lab.training.resume import images_changed, split_changes
from captcha_lab.training.system import load_system

log = logging.getLogger(__name__)


@dataclass
class EvalSchema:
    """conf/eval.yaml's keys and types: a misspelt key or a wrong type fails at composition."""

    ckpt_path: str = MISSING
    batch_size: int = 256
    seed: int = 0
    charset: Any = MISSING
    data: Any = MISSING


ConfigStore.instance().store(name="eval_schema", node=EvalSchema)


RUN_CONFIG = Path(".hydra", "config.yaml")  # in a run dir: the config its train.py resolved


def run_data_settings(run_dir: str | Path) -> dict:
    """The data settings a finished run's train.py resolved (its RUN_CONFIG), as plain values."""
    path = Path(run_dir) / RUN_CONFIG
    try:
        data = OmegaConf.to_container(OmegaConf.load(path).data, resolve=True)
    except (OSError, yaml.YAMLError, OmegaConfBaseException, ValueError) as e:  # ValueError: data is no node
        raise ConfigError(f"{path}: not a run's config with its data settings ({first_line(e)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: its data: is {data!r}, not the run's data settings")
    return data


def run_datamodule(run_dir: str | Path, **overrides) -> CaptchaDataModule:
    """A finished run's data module, set up: its folder split as its train.py split it, `overrides`
    (e.g. a checkpoint's symbols) on top. For the bench scripts that score a run on the images it
    validated on."""
    settings = {k: v for k, v in run_data_settings(run_dir).items() if not k.startswith("_")}
    module = CaptchaDataModule(**settings | overrides)
    module.setup()
    return module


def refuse_input_size(keys: list[str], net) -> None:
    """Else a shape error at the first batch, or scores at a size the net never trained at."""
    for key in keys:
        if key in ("data.height", "data.width", "data.channels"):
            (h, w), channels = net.spec["image_size"], net.spec["in_channels"]
            raise ConfigError(
                f"{key}: the net reads {h}x{w} images with {channels} channel(s), as it trained; eval prepares"
                " every image so: drop it"
            )


def named_data(data: DictConfig, net) -> DictConfig:
    """A `data=...` config named on the command line, fitted to the net's input and label lengths."""
    data = with_net_input(data.copy(), net)
    longest = net.spec["length"]
    if net.variable_length:  # reads up to `longest` characters
        if type(data.length) is int:  # else the data module's checks name the bad value
            data.length = min(data.length, longest)
        data.max_length = longest
    else:  # fixed heads read exactly `longest`
        data.length, data.max_length = longest, None
    return data


def eval_data_config(cfg: DictConfig, net) -> tuple[DictConfig, str | None]:
    """The data config of the run that wrote the checkpoint (so train/val/test are the split it
    trained on), with `data.*=` overrides on top; `data=...` on the command line replaces it,
    fitted to the label lengths the net reads. Second: a test folder to score instead of the
    test split that the run held out of its folder (which train and val still leave out)."""
    run_dir = Path(cfg.ckpt_path).resolve().parent.parent
    run_config = run_dir / RUN_CONFIG
    keys = override_keys()
    refuse_input_size(keys, net)
    if "data" in keys:
        return named_data(cfg.data, net), None
    if not run_config.is_file():  # a copied checkpoint: eval.yaml's default data would be a guess
        raise ConfigError(
            f"ckpt_path: {cfg.ckpt_path} is not in a run dir's checkpoints/ (no {run_config}), so its split "
            "is unknown; name the data, e.g. data=captcha_v2 data.dir=DIR"
        )
    if "seed" in keys:  # it would be ignored: the run's data config holds the run's own seed
        raise ConfigError(
            f"seed={cfg.seed}: the run's own data config keeps its seed; data.seed={cfg.seed} splits its folder "
            "anew, or data=... names another data config"
        )
    data = OmegaConf.create(run_data_settings(run_dir))
    data = with_net_input(data, net)
    held_out = data.get("test_dir") is None  # the run's test split came out of its folder
    for key in keys:  # resolved above against the run's own seed and charset
        if key.startswith("data."):
            OmegaConf.update(data, key[5:], OmegaConf.select(cfg, key))
    if held_out and data.get("test_dir") is not None:  # else train and val would be split anew
        test_dir, data.test_dir = data.test_dir, None
        return data, test_dir
    return data, None


def with_net_input(data: DictConfig, net) -> DictConfig:
    """Images prepared as the net was trained on them, whatever folder they come from."""
    data.height, data.width = net.spec["image_size"]
    data.channels = net.spec["in_channels"]
    return data


def check_run_split(ckpt_path: str, datamodule, other_test_dir: str | None) -> None:
    """The run's data config, and what data.* changed in it: warn of a split drawn anew (test
    may then hold training images); refuse its own folder as data.test_dir, and a folder whose
    images changed since (every split reshuffled) unless another folder is the test split."""
    ckpt = read_checkpoint(ckpt_path)
    changed = [k for k in split_changes(ckpt, dict(datamodule.hparams)) if k != "test_dir"]
    for key in changed:
        value = datamodule.hparams[key]
        log.warning("data.%s=%s: the run's images are split anew, so test may hold some it trained on", key, value)
    if other_test_dir is not None and Path(other_test_dir).resolve() == Path(datamodule.folder).resolve():
        raise ConfigError(f"data.test_dir: {other_test_dir} is the folder the run trained on: test would hold those")
    why = None if changed else images_changed(ckpt_path, ckpt, datamodule)
    if why and other_test_dir is None:
        raise ConfigError(
            f"{why}: its split cannot be drawn again; restore the folder, or score another one with data.test_dir=DIR"
        )
    if why:
        log.warning("%s: train and val are split anew (test: %s)", why, other_test_dir)


EVAL_SHOWN = ("loss", "char_acc", "seq_acc")  # the per-split numbers eval logs (all are in eval.json)


def evaluate(cfg: DictConfig) -> dict:
    """Metrics of a checkpoint on train/val/test, per-character scores and figures (eval.json)."""
    with job_errors():
        check_keys(cfg, EvalSchema)
        require(cfg, "ckpt_path")
        check_checkpoint_file(cfg, "ckpt_path")
        require_at_least_one(cfg, "batch_size")
        set_up_for_job()
        out_dir = Path(HydraConfig.get().runtime.output_dir)
        # The checkpoint's charset, which a charset= on the command line must then match.
        named = any(k == "charset" or k.startswith("charset.") for k in override_keys())
        system = load_system(cfg.ckpt_path, symbols=cfg.charset.symbols if named else None)
        data, other_test_dir = eval_data_config(cfg, system.net)
        datamodule = make("data", data, symbols=system.charset.symbols)
        datamodule.prepare_data()
        datamodule.setup("test")
        if other_test_dir is not None:
            datamodule.replace_test(other_test_dir)
        if "data" not in override_keys():  # else another data config: a split of its own
            check_run_split(cfg.ckpt_path, datamodule, other_test_dir)
        splits = {k: v for k, v in datamodule.splits.items() if len(v)}
        results = analyse(system, splits, "test" if "test" in splits else "val", out_dir, cfg.batch_size)
        write_json(out_dir / "eval.json", {"ckpt_path": str(cfg.ckpt_path), **results})
        shown = [k for k in results if k.split("/")[-1] in EVAL_SHOWN]
        log_summary("eval dir", out_dir, results, shown)
        return results
    return {}  # a sweep job that stopped on a user error (its error.txt)
