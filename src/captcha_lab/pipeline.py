"""The Hydra-facing pipeline: the only module that composes objects from config."""

import json
import logging
import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import lightning as L
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import MISSING, DictConfig, OmegaConf

from captcha_lab.checkpoint import load_system
from captcha_lab.errors import CaptchaLabError, ConfigError
from captcha_lab.sweep import write_summary
from captcha_lab.system import CTC_KINDS, CaptchaSystem

log = logging.getLogger("captcha_lab")


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


@contextmanager
def user_errors():
    """Report a user error (bad data, bad config) as one line on stderr, not a traceback."""
    try:
        yield
    except CaptchaLabError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def validate(cfg: DictConfig) -> None:
    """Range checks the schema's types cannot express; run before any data is read."""
    checks = [
        ("lr", cfg.lr > 0 and math.isfinite(cfg.lr), "a positive number"),
        ("batch_size", cfg.batch_size >= 1, "at least 1"),
        ("epochs", cfg.epochs >= 1, "at least 1"),
        ("seed", cfg.seed >= 0, "at least 0"),
        ("label_smoothing", 0 <= cfg.label_smoothing < 1, "in [0, 1)"),
    ]
    for key, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{key} must be {expected}, got {cfg[key]}")
    if cfg.ckpt_path is not None and not Path(cfg.ckpt_path).is_file():
        raise ConfigError(f"ckpt_path: no checkpoint file at {cfg.ckpt_path}")
    if cfg.ckpt_init is not None and not Path(cfg.ckpt_init).is_file():
        raise ConfigError(f"ckpt_init: no checkpoint file at {cfg.ckpt_init}")


def flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    """What people sweep, flattened for TensorBoard's HParams tab."""
    choices = HydraConfig.get().runtime.choices
    groups = ("data", "model", "optimizer", "activation", "charset", "scheduler", "augment")
    params = {k: choices.get(k) for k in groups}
    params.update(lr=cfg.lr, batch_size=cfg.batch_size, epochs=cfg.epochs, seed=cfg.seed)
    params.update(label_smoothing=cfg.label_smoothing, fold=cfg.data.get("fold"))
    # TensorBoard's HParams take scalars only: lists (model.channels) become their text.
    model = {k: str(list(v)) if OmegaConf.is_list(v) else v for k, v in cfg.model.items() if not k.startswith("_")}
    params.update({f"model.{k}": v for k, v in model.items()})
    return params


def init_weights(net, path: str) -> None:
    """Start from the weights of a trained checkpoint (e.g. pretrained on data=synthetic); the
    optimizer, schedule and epoch count start afresh, unlike ckpt_path's resume."""
    source = load_system(path).net
    if source.spec != net.spec:
        raise ConfigError(f"ckpt_init: {path} holds a different net ({source.spec}), not {net.spec}")
    net.load_state_dict(source.state_dict())
    log.info("initialized weights from %s", path)


def build(cfg: DictConfig):
    datamodule = instantiate(cfg.data)
    length = cfg.data.get("max_length") or cfg.data.length  # the longest label
    net = instantiate(cfg.model, num_classes=len(cfg.charset.symbols), length=length)
    if net.spec["kind"] not in CTC_KINDS and length != cfg.data.length:
        raise ConfigError("data.max_length: labels of several lengths need model=crnn (fixed heads read one length)")
    if cfg.ckpt_init is not None:
        init_weights(net, cfg.ckpt_init)
    system = CaptchaSystem(
        net=net,
        symbols=cfg.charset.symbols,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.scheduler else None,
        augment=instantiate(cfg.augment) if cfg.augment else None,
        label_smoothing=cfg.label_smoothing,
    )
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    logger = instantiate(cfg.logger)
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks)
    return datamodule, system, trainer


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)  # never a half-written file, even if killed


def train(cfg: DictConfig) -> float:
    """Fit, test the best checkpoint, write metrics.json; returns the best val/seq_acc."""
    with user_errors():
        validate(cfg)
        start = time.perf_counter()
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        out_dir = Path(HydraConfig.get().runtime.output_dir)
        datamodule, system, trainer = build(cfg)
        trainer.fit(system, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        checkpoint = next(c for c in trainer.callbacks if isinstance(c, ModelCheckpoint))
        metrics = {
            "val/seq_acc_best": float(checkpoint.best_model_score or 0.0),
            "val/loss_best": float(trainer.callback_metrics.get("val/loss_best", math.nan)),
        }
        if datamodule.has_split("test"):
            # The best checkpoint when one was saved (fast_dev_run saves none).
            best = "best" if checkpoint.best_model_path else None
            (tested,) = trainer.test(system, datamodule=datamodule, ckpt_path=best, verbose=False)
            metrics.update(tested)
        metrics.update(epochs=trainer.current_epoch, wall_s=round(time.perf_counter() - start, 1))
        if trainer.is_global_zero:
            write_json(out_dir / "metrics.json", metrics)
            if trainer.logger is not None:
                best = {f"hparams/{k.replace('/', '_')}": metrics[k] for k in ("val/seq_acc_best", "val/loss_best")}
                trainer.logger.log_hyperparams(flat_hparams(cfg), best)
            report(out_dir, metrics)
        return metrics["val/seq_acc_best"]


def report(out_dir: Path, metrics: dict) -> None:
    keys = ["val/seq_acc_best", "test/seq_acc", "test/char_acc", "test/loss", "wall_s"]
    shown = "  ".join(f"{k}={metrics[k]:.4g}" for k in keys if k in metrics)
    log.info("run dir: %s", out_dir)
    log.info("%s", shown)


class SweepSummary(Callback):
    """Hydra callback: after a multirun, tabulate its jobs at the sweep root."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = write_summary(sweep_dir)
        log.info("sweep summary (%d jobs): %s", len(rows), sweep_dir / "summary.md")
