"""train.py's job: build the data module, system and trainer from the composed config, fit, test
the best checkpoint, and write the run's results (metrics.json, plots, best.onnx)."""

import logging
import math
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint, Timer
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from captcha_lab.analysis.plots import plot_run
from captcha_lab.atomic import write_json
from captcha_lab.cli.jobs import job_errors, log_summary, make
from captcha_lab.cli.process import set_up_for_job
from captcha_lab.cli.train_config import check_factories, check_net_fits, validate
from captcha_lab.errors import ConfigError
from captcha_lab.models.base import weights_spec
from captcha_lab.models.checkpoint import net_and_hparams, read_checkpoint
from captcha_lab.training.callbacks import EpochTimer, RankSeed
from captcha_lab.training.resume import check_resumable, init_overlap
from captcha_lab.training.system import CaptchaSystem

log = logging.getLogger("captcha_lab")


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


def init_weights(net, path: str, datamodule) -> None:
    """Start from the weights of a trained checkpoint (e.g. pretrained on data=synthetic); the
    optimizer, schedule and epoch count start afresh, unlike ckpt_path's resume. Its alphabet must
    be this run's, order included: each output class stands for a symbol."""
    ckpt = read_checkpoint(path)
    source, _ = net_and_hparams(path, ckpt, symbols=datamodule.charset.symbols)
    if weights_spec(source.spec) != weights_spec(net.spec):  # how each reads may differ
        raise ConfigError(f"ckpt_init: {path} holds a different net ({source.spec}), not {net.spec}")
    net.load_state_dict(source.state_dict())
    log.info("initialized weights from %s", path)
    if why := init_overlap(path, ckpt, datamodule):  # allowed: fine-tuning on the same images is a choice
        log.warning("ckpt_init: %s: val/ and test/ scores may count images those weights trained on", why)


def build(cfg: DictConfig):
    if cfg.data.get("symbols", cfg.charset.symbols) != cfg.charset.symbols:  # labels would mean other characters
        raise ConfigError(f"data.symbols: {cfg.data.symbols!r} differs from charset.symbols {cfg.charset.symbols!r}")
    datamodule = make("data", cfg.data)  # reads dir's labels where charset=auto or data.length/width=null
    net = make(
        "model",
        cfg.model,
        num_classes=len(datamodule.charset),
        length=datamodule.max_length,  # the longest label
        min_length=datamodule.length,  # the shortest: CTC reads are held between the two
        image_size=datamodule.image_size,
        in_channels=cfg.data.channels,
    )
    check_net_fits(cfg, net, datamodule)
    if cfg.ckpt_init is not None:
        init_weights(net, cfg.ckpt_init, datamodule)
    optimizer = make("optimizer", cfg.optimizer)
    scheduler = make("scheduler", cfg.scheduler) if cfg.scheduler else None
    check_factories(net, optimizer, scheduler)
    system = CaptchaSystem(
        net=net,
        symbols=datamodule.charset.symbols,
        optimizer=optimizer,
        scheduler=scheduler,
        augment=make("augment", cfg.augment) if cfg.augment else None,
        label_smoothing=cfg.label_smoothing,
    )
    return datamodule, system, make_trainer(cfg, system.logged_names)


def make_trainer(cfg: DictConfig, logged: set[str]) -> L.Trainer:
    """The Trainer with the configured callbacks, each monitoring a metric in `logged`, and logger."""
    # `callbacks.<name>=null` on the command line switches one off.
    callbacks = [make("callbacks", c) for c in cfg.callbacks.values() if c is not None] + [RankSeed(cfg.seed)]
    for name, node in cfg.callbacks.items():  # else Lightning stops at the end of the first epoch
        monitor = node.get("monitor") if node is not None else None
        if monitor is not None and monitor not in logged:
            raise ConfigError(f"callbacks.{name}.monitor: {monitor!r} is not logged; one of {sorted(logged)}")
    # `~logger` switches logging off (None would make Lightning add its own default logger).
    logger = make("logger", cfg.logger) if cfg.logger else False
    return make("trainer", cfg.trainer, logger=logger, callbacks=callbacks)


@contextmanager
def uninitialized_memory_left_as_is():
    """trainer.deterministic=true also makes torch fill each uninitialized new tensor (torch.empty
    and the like) with NaN, so that a read of memory nobody wrote would show, at a measurable
    cost per step. Nothing here reads such memory (a test compares the weights bit for bit with
    and without the filling); torch's setting is restored afterwards."""
    before = torch.utils.deterministic.fill_uninitialized_memory
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = before


@contextmanager
def sigterm_raises():
    """After fit and test, Lightning's SIGTERM handler is gone, and SIGTERM would end the process
    mid-write (a .best.onnx.<pid>.tmp left beside the checkpoint): raised instead, the writers
    remove their temporary files and the run stops as any stopped one (exit 143)."""

    def stop(signum, frame):
        raise SIGTERMException

    if threading.current_thread() is not threading.main_thread():  # a launcher's thread: Python allows none
        yield
        return
    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def nothing_left(cfg: DictConfig, trainer: L.Trainer) -> str:
    """Why a resumed fit trained nothing: its epochs, or its time (Lightning's Timer resumes the
    time spent, so a run stopped by trainer.max_time stops again at once)."""
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    remaining = timer.time_remaining() if timer is not None else None
    if remaining is not None and remaining <= 0:
        spent = timer.time_elapsed()
        return (
            f"trainer.max_time: {cfg.ckpt_path} has trained for {spent:.0f} s, all of it; raise it, or null, to go on"
        )
    return f"epochs={cfg.epochs}: {cfg.ckpt_path} has trained as many; nothing left to train"


def train(cfg: DictConfig) -> float:
    """Fit, test the best checkpoint, write metrics.json; returns the best val/seq_acc."""
    with job_errors(), uninitialized_memory_left_as_is():
        validate(cfg)
        start = time.perf_counter()
        set_up_for_job()
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        out_dir = Path(HydraConfig.get().runtime.output_dir)
        datamodule, system, trainer = build(cfg)
        if cfg.ckpt_path is not None:  # plain data (weights_only) and this charset/model, or one line
            done = check_resumable(cfg.ckpt_path, system, datamodule)
            if done >= cfg.epochs:  # Lightning would stop at once: no training, NaN val metrics
                raise ConfigError(f"epochs={cfg.epochs}: {cfg.ckpt_path} has trained {done}; nothing left to train")
        trainer.fit(system, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        if cfg.ckpt_path is not None and not trainer.callback_metrics:  # e.g. saved in its last validation
            raise ConfigError(nothing_left(cfg, trainer))
        metrics = fit_and_test_metrics(trainer, system, datamodule)
        if trainer.received_sigterm:  # in the test's last batch, which Lightning finishes: stop as in any other
            raise SIGTERMException
        # Timings go apart from metrics, so that equal seeds give byte-identical metrics.json.
        timer = next((c for c in trainer.callbacks if isinstance(c, EpochTimer)), None)
        timing = {
            "wall_s": round(time.perf_counter() - start, 2),
            "epoch_s_median": timer.steady_state if timer else None,
        }
        if trainer.is_global_zero:
            with sigterm_raises():
                write_results(cfg, trainer, out_dir, metrics, timing)
        return finite_score(metrics["val/seq_acc_best"])
    return 0.0  # a sweep job that stopped on a user error (its error.txt): optuna needs a number


def fit_and_test_metrics(trainer: L.Trainer, system: CaptchaSystem, datamodule) -> dict[str, float]:
    """After fit: the val scores, then the test split's with the best checkpoint."""
    # The last epoch's val scores too: unlike the bests, no epoch was picked by them.
    kept = ("val/seq_acc_best", "val/loss_best", "val/seq_acc", "val/char_acc")
    metrics = {k: float(trainer.callback_metrics.get(k, math.nan)) for k in kept}
    if datamodule.has_split("test"):
        # By path, as "best" is ambiguous with two ModelCheckpoints (best.ckpt, last.ckpt).
        (tested,) = trainer.test(system, datamodule=datamodule, ckpt_path=best_checkpoint(trainer), verbose=False)
        metrics.update(tested)
    metrics["epochs"] = trainer.current_epoch
    return metrics


def best_checkpoint(trainer: L.Trainer) -> str | None:
    """best.ckpt's path (from the ModelCheckpoint that monitors a metric; the other writes
    last.ckpt), or None where none was saved (fast_dev_run saves none)."""
    checkpoint = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.monitor), None)
    return (checkpoint and checkpoint.best_model_path) or None


def write_results(cfg: DictConfig, trainer: L.Trainer, out_dir: Path, metrics: dict, timing: dict) -> None:
    """metrics.json, timing.json, TensorBoard's hparams, the run's plots, best.onnx and the summary."""
    write_json(out_dir / "metrics.json", metrics)
    write_json(out_dir / "timing.json", timing)
    if trainer.logger is not None:
        best = {f"hparams/{k.replace('/', '_')}": metrics[k] for k in ("val/seq_acc_best", "val/loss_best")}
        trainer.logger.log_hyperparams(flat_hparams(cfg), best)
        # Lightning finalized the logger after test(): this write reopened it; close it again so
        # the event is on disk now (the plots read it), not whenever TensorBoard's thread flushes.
        trainer.logger.finalize("success")
        plot_run(out_dir)
    best_ckpt = best_checkpoint(trainer)
    if best_ckpt:  # last of the outputs, which stand whatever it meets
        # Here, not at the top: onnx and the exporter load only when a run has ended.
        from captcha_lab.inference.export import export_quietly

        export_quietly(best_ckpt)  # best.onnx beside it, for predict.py
    log_summary("run dir", out_dir, {**metrics, **timing}, TRAIN_SHOWN)


def finite_score(score: float) -> float:
    """A diverged run scores 0, not NaN: optimizers of sweeps (optuna) need a finite number."""
    return score if math.isfinite(score) else 0.0


TRAIN_SHOWN = ("val/seq_acc_best", "test/seq_acc", "test/char_acc", "test/loss", "wall_s")
