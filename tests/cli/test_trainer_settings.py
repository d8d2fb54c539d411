"""Trainer and callback settings that Lightning takes unchecked fail at start-up, naming the key."""

import pytest

from captcha_lab.cli.train_config import validate
from captcha_lab.errors import ConfigError


@pytest.mark.parametrize(
    "overrides,message",
    [
        # Ran without deterministic algorithms: Lightning switches them on for True or "warn" only.
        (["trainer.deterministic=maybe"], "trainer.deterministic must be true, false or warn, got 'maybe'"),
        (["trainer.log_every_n_steps=-5"], r"trainer.log_every_n_steps must be an integer >= 0 \(0: never\), got -5"),
        (["+trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches must be an integer >= 1, got 0"),
        (["+trainer.check_val_every_n_epoch=0"], "trainer.check_val_every_n_epoch must be an integer >= 1"),
        (["+trainer.num_sanity_val_steps=-5"], r"trainer.num_sanity_val_steps must be an integer >= -1"),
        (["+trainer.min_epochs=-2"], "trainer.min_epochs must be an integer >= 0"),
        (["+trainer.gradient_clip_val=-1"], r"trainer.gradient_clip_val must be >= 0 or null, got -1$"),
        (["+trainer.gradient_clip_val=true"], r"trainer.gradient_clip_val must be >= 0 or null, got True$"),
        (["+trainer.benchmark=x"], "trainer.benchmark must be true or false, got 'x'"),
        (["+trainer.detect_anomaly=1"], "trainer.detect_anomaly must be true or false, got 1"),
        # Stopped at the first epoch without a new best.
        (["callbacks=early_stop", "callbacks.early_stopping.patience=-1"], "callbacks.early_stopping.patience must"),
        (["callbacks=early_stop", "callbacks.early_stopping.patience=2.5"], r"callbacks.early_stopping.patience must"),
    ],
)
def test_bad_trainer_settings_fail_before_data(make_cfg, overrides, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        validate(make_cfg(*overrides))


@pytest.mark.parametrize(
    "overrides",
    [
        ["trainer.deterministic=warn"],
        ["trainer.deterministic=false"],
        ["trainer.log_every_n_steps=0"],
        ["+trainer.num_sanity_val_steps=-1"],
        ["+trainer.gradient_clip_val=0.5"],
        ["+trainer.gradient_clip_val=null"],
        ["callbacks=early_stop", "callbacks.early_stopping.patience=0"],
        ["trainer=gpu"],
        ["trainer=ddp"],
    ],
)
def test_good_trainer_settings_pass(make_cfg, overrides):
    validate(make_cfg(*overrides))
