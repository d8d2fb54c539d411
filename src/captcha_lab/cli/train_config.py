"""train.py's config: the schema of its top-level keys, and the checks of a composed config
that types cannot express, each failing as one line naming the key before any data is read
(the net's fit to the labels and the optimizer's settings once those are built)."""

import inspect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import MISSING, DictConfig, OmegaConf

from captcha_lab.cli import validation
from captcha_lab.data.charset import check_symbols
from captcha_lab.data.inferred import AUTO
from captcha_lab.data.settings import MAX_SEED
from captcha_lab.errors import ConfigError
from captcha_lab.models.registry import check_kind
from captcha_lab.training.eval_weights import has_eval_weights


@dataclass
class TrainSchema:
    """Types of the top-level keys: `lr=abc` or a misspelt key fails at composition."""

    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 60
    seed: int = 0
    ckpt_path: Optional[str] = None  # noqa: UP045 (OmegaConf schemas need typing.Optional)
    ckpt_init: Optional[str] = None  # noqa: UP045
    label_smoothing: float = 0.0
    run_name: str = MISSING
    charset: Any = MISSING
    data: Any = MISSING
    model: Any = MISSING
    activation: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = None
    augment: Any = None
    trainer: Any = MISSING
    logger: Any = None
    callbacks: Any = MISSING


ConfigStore.instance().store(name="train_schema", node=TrainSchema)
GROUPS = ("data", "model", "optimizer", "scheduler", "augment", "trainer", "logger")


def validate(cfg: DictConfig) -> None:
    """Range checks the schema's types cannot express; run before any data is read."""
    validation.check_keys(cfg, TrainSchema)
    checks = [
        ("lr", cfg.lr > 0 and math.isfinite(cfg.lr), "a positive number"),
        ("batch_size", cfg.batch_size >= 1, "at least 1"),
        ("epochs", cfg.epochs >= 1, "at least 1"),
        ("seed", 0 <= cfg.seed <= MAX_SEED, f"in [0, {MAX_SEED}] (NumPy's seeds)"),
        ("label_smoothing", 0 <= cfg.label_smoothing < 1, "in [0, 1)"),
    ]
    for key, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{key} must be {expected}, got {cfg[key]}")
    symbols = cfg.charset.get("symbols")
    if isinstance(symbols, str) and symbols != AUTO:  # as configured; the data module checks the rest
        check_symbols(symbols)
    if cfg.trainer.get("max_epochs") != cfg.epochs:  # Lightning would assert an int mid-fit
        raise ConfigError(f"trainer.max_epochs follows epochs=; set that instead (got {cfg.trainer.max_epochs})")
    validation.check_trainer_settings(cfg)
    validation.check_checkpoint_file(cfg, "ckpt_path")
    validation.check_checkpoint_file(cfg, "ckpt_init")
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    validation.check_targets(cfg, GROUPS)
    validation.check_checkpoint_dirs(cfg, run_dir)
    validation.check_logger_dir(cfg, run_dir)
    check_logger_settings(cfg)
    devices = cfg.trainer.get("devices", 1)
    devices = len(devices) if OmegaConf.is_list(devices) else devices
    # strategy=auto over several devices is DDP too (trainer.devices=2)
    ddp = "ddp" in str(cfg.trainer.get("strategy", "")).lower() or devices not in (1, "1", "auto", None)
    if HydraConfig.get().get("mode") == RunMode.MULTIRUN and ddp:
        # Lightning re-launches sys.argv (with -m) per rank: every rank would start the whole sweep.
        raise ConfigError(
            "trainer: DDP cannot run inside a multirun (-m, or an experiment/hparams_search that sweeps);"
            " run one job per command (docs/troubleshooting.md)"
        )


# [low, high) of optimizer settings that torch and schedulefree leave unchecked (rmsprop's alpha=5
# trained to a NaN loss, exit 0); betas are checked as beta1 and beta2.
OPTIMIZER_BOUNDS = dict.fromkeys(("momentum", "alpha", "beta1", "beta2"), (0, 1))
OPTIMIZER_BOUNDS |= dict.fromkeys(("weight_decay", "warmup_steps"), (0, math.inf))


def check_factories(net, optimizer, scheduler) -> None:
    """Build the optimizer and schedule once now: their own checks (SGD's momentum, OneCycle's
    pct_start) would otherwise end the run with a traceback when fit starts, after the logger."""
    try:
        built = optimizer(net.parameters())
    except (ValueError, TypeError) as e:
        raise ConfigError(f"optimizer: {e}") from None
    settings = dict(built.defaults)
    settings.update(zip(("beta1", "beta2"), settings.get("betas", ()), strict=False))
    for key, (low, high) in OPTIMIZER_BOUNDS.items():
        if isinstance(settings.get(key), int | float) and not low <= settings[key] < high:
            raise ConfigError(f"optimizer.{key} must be in [{low}, {high}), got {settings[key]}")
    try:
        if scheduler is not None:
            scheduler(built, total_steps=100)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"scheduler: {e}") from None
    if scheduler is not None and has_eval_weights(built):
        # Its averaged weights assume a steady lr and betas, which onecycle, for one, moves.
        raise ConfigError("scheduler: this optimizer warms up itself and takes no schedule; use scheduler=none")


def on_cuda(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def check_net_fits(cfg: DictConfig, net, datamodule) -> None:
    """What the net cannot do with these labels and settings, before any training."""
    try:
        check_kind(net)
    except ValueError as e:
        raise ConfigError(f"model: {e}") from None
    kind = net.spec["kind"]
    if not net.variable_length and datamodule.length != datamodule.max_length:
        raise ConfigError(
            f"data.length: labels of {datamodule.length} to {datamodule.max_length} symbols, but model={kind} reads"
            " one length; use a CTC net (model=crnn), or keep one length with data.length=N"
        )
    if net.variable_length and net.frames < datamodule.max_length:  # each CTC loss inf, zeroed: no learning
        raise ConfigError(
            f"data.width: {datamodule.image_size[1]} px wide images give model={kind} {net.frames} frames, fewer"
            f" than labels of {datamodule.max_length} symbols; use wider images or fewer model.width_halvings"
        )
    if cfg.label_smoothing and not net.label_smoothing:
        raise ConfigError(f"label_smoothing: model={kind} ({net.decoding}) has none; got {cfg.label_smoothing}")
    deterministic = cfg.trainer.get("deterministic") is True and on_cuda(cfg.trainer.get("accelerator", "auto"))
    if deterministic and not net.deterministic_on_cuda:
        # torch.use_deterministic_algorithms would stop the first backward with a RuntimeError.
        raise ConfigError(f"trainer.deterministic=true: {net.decoding}'s CUDA backward is not deterministic; use warn")


def check_logger_settings(cfg: DictConfig) -> None:
    """TensorBoardLogger hands settings it does not know to SummaryWriter, which would fail with a
    TypeError at the first logged value, mid-fit."""
    logger = cfg.get("logger")
    if not logger or not str(logger.get("_target_", "")).endswith(".TensorBoardLogger"):
        return
    from lightning.pytorch.loggers import TensorBoardLogger
    from torch.utils.tensorboard import SummaryWriter

    known = set(inspect.signature(TensorBoardLogger).parameters) | set(inspect.signature(SummaryWriter).parameters)
    known -= {"log_dir", "kwargs"}  # TensorBoardLogger passes log_dir itself
    for key in logger:
        if not str(key).startswith("_") and key not in known:
            raise ConfigError(f"logger.{key}: TensorBoardLogger has no such setting; drop it with ~logger.{key}")
