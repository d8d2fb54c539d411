"""Checks of a composed config that its schema's types cannot express, each failing as one line
that names the key."""

import dataclasses
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from captcha_lab.errors import ConfigError

REQUIRED_EXAMPLES = {"ckpt_path": "outputs/runs/<run>/checkpoints/best.ckpt", "input": "captchas/"}


def require_at_least_one(cfg: DictConfig, key: str) -> None:
    if cfg[key] < 1:
        raise ConfigError(f"{key} must be at least 1, got {cfg[key]}")


def require(cfg: DictConfig, *keys: str) -> None:
    for key in keys:
        if OmegaConf.is_missing(cfg, key) or cfg[key] == "":  # `ckpt_path=` would read as "."
            raise ConfigError(f"{key} is required, e.g. {key}={REQUIRED_EXAMPLES[key]}")


def check_checkpoint_file(cfg: DictConfig, key: str) -> None:
    """Named by its key here: the checkpoint reader, which knows no config, would name only the path."""
    if cfg[key] is not None and not Path(cfg[key]).is_file():
        raise ConfigError(f"{key}: no checkpoint file at {cfg[key]}")


def check_keys(cfg: DictConfig, schema: type) -> None:
    """Hydra lets `+lrr=1` add a top-level key that no schema field names; nothing would read it."""
    known = [f.name for f in dataclasses.fields(schema)]
    for key in cfg:
        if key not in known and key != "hydra":
            raise ConfigError(f"{key}: no such key (+{key}= adds one that nothing reads); the keys: {', '.join(known)}")


def check_checkpoint_dirs(cfg: DictConfig, run_dir: Path) -> None:
    """A callback's `dirpath` outside the run dir that holds another run's checkpoints would
    overwrite them (last.ckpt) or write beside them (best-v1.ckpt); resuming from one there is fine.
    A `filename` holding a path (../../other/checkpoints/last) would do the same from any dirpath."""
    resumed = Path(cfg.ckpt_path).resolve().parent if cfg.get("ckpt_path") else None
    for name, node in cfg.get("callbacks", {}).items():
        filename = node.get("filename") if node is not None else None
        # Lightning's {val/seq_acc:.3f} fields become values, not folders (auto_insert_metric_name=false).
        bare = re.sub(r"\{[^}]*\}", "x", str(filename))
        if filename is not None and (Path(bare).name != bare or bare in ("", ".", "..")):
            raise ConfigError(f"callbacks.{name}.filename: a file name, not a path, got {filename!r}; use dirpath=")
        dirpath = node.get("dirpath") if node is not None else None
        folder = Path(dirpath).resolve() if dirpath else None
        if folder is not None and folder != resumed and (held := others_file(folder, run_dir, "*.ckpt")):
            raise ConfigError(
                f"callbacks.{name}.dirpath: {folder} holds another run's checkpoints ({held}); choose another"
            )


def others_file(folder: Path, run_dir: Path, pattern: str) -> str | None:
    """The first file matching `pattern` in a `folder` outside `run_dir` (another run's, which
    this run's outputs there would replace or mix with), or None."""
    if folder.is_relative_to(run_dir.resolve()):
        return None
    return next((p.name for p in sorted(folder.glob(pattern))), None)


def _int_from(low: int):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


# Trainer settings that Lightning takes unchecked: deterministic=maybe trained without
# deterministic algorithms, log_every_n_steps=-5 logged every 5th step, patience=-1 stopped at the
# first epoch that did not improve, accumulate_grad_batches=0 failed mid-fit.
TRAINER_CHECKS = {
    "deterministic": (lambda v: v in (True, False, "warn"), "true, false or warn"),
    "log_every_n_steps": (_int_from(0), "an integer >= 0 (0: never)"),
    "check_val_every_n_epoch": (_int_from(1), "an integer >= 1 or null"),
    "accumulate_grad_batches": (_int_from(1), "an integer >= 1"),
    "num_sanity_val_steps": (_int_from(-1), "an integer >= -1 (-1: every batch)"),
    "min_epochs": (_int_from(0), "an integer >= 0 or null"),
    "gradient_clip_val": (lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v >= 0, ">= 0 or null"),
    **{
        key: (lambda v: isinstance(v, bool), "true or false")
        for key in ("benchmark", "detect_anomaly", "sync_batchnorm", "enable_checkpointing", "enable_progress_bar")
    },
}


def check_trainer_settings(cfg: DictConfig) -> None:
    for key, (ok, expected) in TRAINER_CHECKS.items():
        value = cfg.trainer.get(key)
        if value is not None and not ok(value):
            raise ConfigError(f"trainer.{key} must be {expected}, got {value!r}")
    for name, node in cfg.get("callbacks", {}).items():
        patience = node.get("patience") if node is not None else None
        if patience is not None and not _int_from(0)(patience):
            raise ConfigError(f"callbacks.{name}.patience must be an integer >= 0, got {patience!r}")


def check_logger_dir(cfg: DictConfig, run_dir: Path) -> None:
    """A logger folder outside the run dir that holds another run's event files would mix this
    run's curves into that run's (its plots and TensorBoard read every event file there)."""
    logger = cfg.get("logger")
    if not logger or not logger.get("save_dir"):
        return
    parts = [logger.get(key) for key in ("name", "version")]
    folder = Path(logger.save_dir, *(str(p) for p in parts if p not in (None, ""))).resolve()
    if held := others_file(folder, run_dir, "events.out.tfevents.*"):
        raise ConfigError(f"logger.save_dir: {folder} holds another run's events ({held}); choose another")


def check_targets(cfg: DictConfig, groups: tuple[str, ...]) -> None:
    """`~augment +augment.x=1` leaves a group with settings but nothing to build them into."""
    nodes = [(g, cfg.get(g)) for g in groups] + [(f"callbacks.{k}", v) for k, v in cfg.get("callbacks", {}).items()]
    for key, node in nodes:
        if isinstance(node, DictConfig) and len(node) and "_target_" not in node:  # empty: none chosen
            raise ConfigError(f"{key}: settings ({', '.join(map(str, node))}) but no {key} chosen to take them")
