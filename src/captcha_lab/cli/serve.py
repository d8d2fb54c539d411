"""serve.py: `python serve.py ckpt_path=PATH [port=8000] [batching.max_batch=32] ...`.

Serves the checkpoint's ONNX export (train.py writes best.onnx beside best.ckpt) on ONNX Runtime,
without importing PyTorch: the config is checked here and turned into serving's plain arguments.
A missing key, a bad value or a missing, stale or foreign export stops it with one line."""

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from captcha_lab.cli.exits import user_errors
from captcha_lab.cli.process import set_up_for_job
from captcha_lab.cli.validation import check_checkpoint_file, check_keys, require
from captcha_lab.data.images import MAX_PIXELS
from captcha_lab.errors import ConfigError, first_line
from captcha_lab.serving.payload import Limits
from captcha_lab.serving.server import Settings, serve


@dataclass
class BatchingConfig:
    max_batch: int = 32
    max_wait_ms: float = 0.0


@dataclass
class LimitsConfig:
    max_body_bytes: int = Limits.max_body_bytes
    max_images: int = Limits.max_images
    max_pixels: int = Limits.max_pixels


@dataclass
class ServeConfig:
    """conf/serve.yaml's keys and types, so that `port=abc` fails as one line naming the key."""

    ckpt_path: str = MISSING
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    threads: int = 1
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    graceful_timeout_s: float = 30.0
    access_log: bool = False


# key -> (lowest, highest) allowed
RANGES = {
    "port": (0, 65535),
    "workers": (1, 64),
    "threads": (0, 256),
    "batching.max_batch": (1, 4096),
    "batching.max_wait_ms": (0, 1000),
    "limits.max_body_bytes": (1, 2**31),
    "limits.max_images": (1, 4096),
    "limits.max_pixels": (1, MAX_PIXELS),  # any reader refuses an image above it
    "graceful_timeout_s": (0, 3600),
}


def checked(cfg: DictConfig) -> DictConfig:
    check_keys(cfg, ServeConfig)
    for section in ("batching", "limits"):  # OmegaConf's merge error for these names no key
        if section in cfg and not isinstance(cfg[section], DictConfig):
            raise ConfigError(f"{section} is a group of settings ({section}.KEY=VALUE), got {cfg[section]!r}")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(ServeConfig), cfg)
    except (ValidationError, ConfigKeyError) as e:  # a wrong type; an unknown key under batching or limits
        raise ConfigError(f"{e.full_key}: {first_line(e)}") from None
    require(cfg, "ckpt_path")
    if Path(cfg.ckpt_path).suffix.lower() == ".onnx":
        raise ConfigError(
            f"ckpt_path: {cfg.ckpt_path} is an ONNX export; pass its .ckpt (the .onnx is read from beside it)"
        )
    check_checkpoint_file(cfg, "ckpt_path")
    for key, (low, high) in RANGES.items():
        value = OmegaConf.select(cfg, key)
        if not low <= value <= high:
            raise ConfigError(f"{key} must be in [{low}, {high}], got {value}")
    check_address(cfg.host, cfg.port)
    return cfg


def check_address(host: str, port: int) -> None:
    """A host that does not resolve or a port in use: one line naming the key, before the model
    loads (uvicorn would log its start-up and then exit 3)."""
    if not host.strip():  # uvicorn takes "" as every interface: the server open to other machines
        raise ConfigError("host is empty; name an address (127.0.0.1, or 0.0.0.0 for every interface)")
    try:
        with socket.create_server((host, port)):  # SO_REUSEADDR, as uvicorn binds
            pass
    except OSError as e:
        if (e.errno or 0) < 0:  # getaddrinfo's error codes, re-raised by create_server as OSError
            raise ConfigError(f"host: {host!r} is not an address of this machine") from None
        reason = os.strerror(e.errno) if e.errno else str(e)  # create_server's own adds the address
        raise ConfigError(f"port: cannot listen on {host}:{port} ({reason})") from None


def settings(cfg: DictConfig) -> Settings:
    limits = Limits(**OmegaConf.to_container(cfg.limits))
    return Settings(str(cfg.ckpt_path), cfg.batching.max_batch, cfg.batching.max_wait_ms, limits, cfg.threads)


def run(cfg: DictConfig) -> None:
    """Serve until SIGTERM or Ctrl-C (exit status 0); a user error: one line, status 2."""
    with user_errors():
        cfg = checked(cfg)
        set_up_for_job()
        serve(
            settings(cfg),
            host=cfg.host,
            port=cfg.port,
            workers=cfg.workers,
            graceful_timeout_s=cfg.graceful_timeout_s,
            access_log=cfg.access_log,
        )
