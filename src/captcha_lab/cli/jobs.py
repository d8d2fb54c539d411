"""What train.py and eval.py share around Hydra: user errors as one line (a sweep job's
into its error.txt), objects built from config nodes, and the end-of-job summary."""

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from omegaconf import DictConfig

from captcha_lab.atomic import write_text
from captcha_lab.cli import exits
from captcha_lab.errors import ERROR_FILE, CaptchaLabError, ConfigError, first_line

log = logging.getLogger("captcha_lab")


@contextmanager
def job_errors() -> Iterator[None]:
    """exits.user_errors, with this job's dir where it is one of a sweep's (so the sweep goes on
    past it), plus Lightning's clean stop on SIGTERM (a SystemExit, so caught here). In a sweep a
    job's crash too: its traceback goes to its log and error.txt names it, and the other jobs
    run and are summarised (Hydra's sweeper would re-raise it and end the sweep unsummarised)."""
    hydra = HydraConfig.get()
    sweep_job = Path(hydra.runtime.output_dir) if hydra.mode == RunMode.MULTIRUN else None
    with exits.user_errors(sweep_job):
        try:
            yield
        except SIGTERMException:  # fit stopped cleanly (checkpoints/interrupted.ckpt); not a success
            exits.stop("error: stopped by SIGTERM", 143)
        except CaptchaLabError:
            raise
        except Exception as e:
            if sweep_job is None:
                raise  # one run: its traceback is the report
            log.exception("the job crashed")
            write_text(sweep_job / ERROR_FILE, f"crashed: {type(e).__name__}: {first_line(e)} (traceback in its log)\n")


def make(group: str, node: DictConfig, **kwargs):
    """instantiate(node), with a bad value's own message as one line naming the config group."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, CaptchaLabError):  # already one line naming its key or file
            raise e.__cause__ from None
        if unknown := re.search(r"unexpected keyword argument '(\w+)'", str(e.__cause__)):
            # e.g. experiment=best's model.channels kept under model=report_cnn
            key, target = unknown[1], str(node.get("_target_", "")).rsplit(".", 1)[-1]
            if key in kwargs:  # not in the config: the command passes it, e.g. a new model's __init__ lacks it
                raise ConfigError(
                    f"{group}: {target} must take {key}=; every {group} is given {', '.join(kwargs)}"
                ) from None
            raise ConfigError(f"{group}.{key}: {target} has no such setting; drop it with ~{group}.{key}") from None
        cause = e.__cause__
        # e.g. Trainer(devices=0); accelerator=tpu without torch_xla; logger.save_dir=/proc/x
        user = (ValueError, TypeError, MisconfigurationException, ImportError, OSError, MemoryError)
        if isinstance(cause, user) or (isinstance(cause, RuntimeError) and "allocate" in str(cause)):  # hidden=1e6
            raise ConfigError(f"{group}: {first_line(cause)}") from None
        raise


def override_keys() -> list[str]:
    """The keys the command line set (`data.dir=x`, `+foo=1`, `~logger` -> data.dir, foo, logger)."""
    return [o.split("=")[0].lstrip("+~") for o in HydraConfig.get().overrides.task]


def log_summary(what: str, out_dir: Path, values: dict, keys) -> None:
    """The end-of-run lines: where the outputs are, and the key numbers."""
    log.info("%s: %s", what, out_dir)
    log.info("%s", "  ".join(f"{k}={values[k]:.4g}" for k in keys if k in values))
