"""The Hydra callback of predict.py and serve.py (hydra.callbacks in their configs), apart from
hydra_hooks: those import the sweep analysis, which these commands' start-up does without."""

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from captcha_lab.cli.exits import user_errors
from captcha_lab.errors import ConfigError


class NoSweeps(Callback):
    """predict.py and serve.py run one job: under -m, serve.py would start one server after the
    other (each until stopped) and both would leave a multirun dir. Refused before it is made."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with user_errors():  # one line on stderr, exit status 2
            raise ConfigError(f"{config.hydra.job.name}.py runs one job, not a sweep (-m); run one command per setting")
