"""Bad values fail at start-up, before any training, in one line naming the key: top-level ranges
(before any data is read), every group's settings, and the Trainer's and callbacks' settings that
Lightning takes unchecked."""

import pytest

from captcha_lab.cli.train import build
from captcha_lab.cli.train_config import validate
from captcha_lab.errors import ConfigError


@pytest.mark.parametrize(
    "override,key",
    [("lr=-1", "lr"), ("batch_size=0", "batch_size"), ("epochs=0", "epochs"), ("seed=4294967296", "seed")],
)
def test_out_of_range_values_fail_before_data(make_cfg, override, key):
    with pytest.raises(ConfigError, match=f"^{key} must be"):
        validate(make_cfg(override))


def test_trainer_max_epochs_follows_epochs(make_cfg):
    # Lightning asserted an int only once fit had started (a traceback after the logger began).
    with pytest.raises(ConfigError, match=r"^trainer.max_epochs follows epochs=; set that instead \(got abc\)$"):
        validate(make_cfg("trainer.max_epochs=abc"))


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model.fused=abc"], "model: fused must be true or false, got 'abc'"),
        (["model.head_activation=relu"], "model: head_activation must be one of"),
        (["+model.depth=3"], "model.depth: ReportCNN has no such setting; drop it with ~model.depth$"),
        (["model.hidden=0"], r"model: hidden must be an integer >= 1, got 0$"),  # a reshape error at the first step
        (["model.dropout=1.5"], r"model: dropout must be a number in \[0, 1\), got 1.5$"),
        (["data.test_fraction=2"], r"data.test_fraction must be in \[0, 1\), got 2"),  # raised inside instantiate
        (["data.fold=2"], "data.fold=2 needs data.folds > 1"),  # would be ignored: five equal 'folds'
        # Every image is kept at this size: 100000 took the machine's memory (exit 137).
        (["data.width=100000"], r"data.width must be 8 to 2048 pixels or null \(from the images' aspect\), got 100000"),
        (["data.height=4"], "data.height must be 8 to 2048 pixels, got 4"),
        (["data.folds=5", "data.fold=5"], r"data.fold must be in \[0, data.folds=5\), got 5"),  # an IndexError
        (["+data.num_workers=-1"], "data.num_workers must be >= 0, got -1"),
        (["data.seed=-1"], r"data.seed must be in \[0, 4294967295\], got -1"),  # past the top-level seed's check
        (["model=crnn", "label_smoothing=0.1"], r"label_smoothing: model=crnn \(ctc\) has none"),
        (["model=crnn", "model.rnn_layers=0"], r"model: rnn_layers must be an integer >= 1, got 0$"),
        # Read letter by letter ("got 'a'"); 1000 frame convs trained for minutes an epoch.
        (["model=crnn", "model.channels=abc"], r"model: channels must be a list of conv widths, .* got 'abc'$"),
        (["model=crnn", "model.context=1000"], r"model: context must be an integer in \[0, 16\], got 1000$"),
        # Checked before the Trainer, which needs no GPU for it; on one, the first backward failed.
        (["model=crnn", "trainer=gpu", "trainer.deterministic=true"], "trainer.deterministic=true: ctc's CUDA"),
        # Lightning's own checks of the Trainer's arguments (a MisconfigurationException traceback).
        (["trainer.devices=0"], r"trainer: `Trainer\(devices=0\)` value is not a valid input"),
        (["trainer.accelerator=tpu"], "trainer: "),  # torch_xla missing: was Hydra's multi-line message
        (["model=crnn", "model.channels=[]"], r"model: channels must list at least one conv's width"),
        (["model=crnn", "model.width_halvings=4"], r"model: width_halvings must be at most len\(channels\) = 3"),
        # The generator would loop forever for labels it cannot make; it raised a traceback.
        (["data.synthetic=30", "data.length=1"], "data.synthetic: 30 captchas need as many distinct labels, but 19"),
        # Built only when fit starts (partials): each ended in a traceback after the logger began.
        (["optimizer=sgd", "optimizer.momentum=-1"], "optimizer: Invalid momentum value: -1"),
        (["optimizer.eps=abc"], "optimizer: "),
        # Unchecked by torch and schedulefree: rmsprop's alpha=5 trained to a NaN loss and exited 0.
        (["optimizer=rmsprop", "optimizer.alpha=5"], r"optimizer.alpha must be in \[0, 1\), got 5"),
        (["optimizer=sgd", "optimizer.momentum=5"], r"optimizer.momentum must be in \[0, 1\), got 5"),
        (["optimizer=schedule_free", "+optimizer.betas=[0.9,1.5]"], r"optimizer.beta2 must be in \[0, 1\), got 1.5"),
        (["optimizer=schedule_free", "optimizer.weight_decay=-1"], r"optimizer.weight_decay must be in \[0, inf\)"),
        (["optimizer=schedule_free", "optimizer.warmup_steps=-5"], r"optimizer.warmup_steps must be in \[0, inf\)"),
        (["scheduler=onecycle", "scheduler.pct_start=2"], "scheduler: Expected float between 0 and 1 pct_start"),
        # Onecycle moves betas[0], which schedule-free's averaged weights take as fixed.
        (["optimizer=schedule_free", "scheduler=onecycle"], "scheduler: this optimizer warms up itself and takes no"),
        (["augment=light", "augment.degrees=abc"], r"augment: degrees must be a number in \[0, 180\], got 'abc'$"),
        (["augment=light", "augment.erase=2"], r"augment: erase must be a number in \[0, 1\], got 2$"),
        # Trained on blank images (translate=50) or a negative zoom (scale >= 1), exit 0.
        (["augment=light", "augment.translate=50"], r"augment: translate must be a number in \[0, 0.5\], got 50"),
        (["augment=light", "augment.scale=1"], r"augment: scale must be a number in \[0, 1\), got 1"),
        # The data would be encoded with other characters than the net and its checkpoint read.
        (["data.symbols=yxwpnmgfedcb8765432"], "data.symbols: 'yxwpnmgfedcb8765432' differs from charset.symbols"),
        # Lightning would stop with a traceback at the end of the first epoch.
        (
            ["callbacks.checkpoint.monitor=val/seq_ac"],
            r"callbacks.checkpoint.monitor: 'val/seq_ac' is not logged; one of \[",
        ),
        (
            ["callbacks=early_stop", "callbacks.early_stopping.monitor=val/los"],
            "callbacks.early_stopping.monitor: 'val/los'",
        ),
    ],
)
def test_bad_values_fail_with_one_line(make_cfg, overrides, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        build(make_cfg(*overrides))


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


@pytest.mark.parametrize(
    "overrides,message",
    [
        # A TypeError from SummaryWriter at the first logged value, mid-fit.
        (["+logger.foo=1"], "logger.foo: TensorBoardLogger has no such setting; drop it with ~logger.foo$"),
        # Settings with nothing to build them into: an AttributeError after fit.
        (["~logger", "+logger.x=1"], r"logger: settings \(x\) but no logger chosen to take them$"),
        (["~augment", "+augment.x=1"], r"augment: settings \(x\) but no augment chosen to take them$"),
        # Replaced another run's last.ckpt from inside this run's checkpoints/.
        (["callbacks.last_checkpoint.filename=../../other/last"], "callbacks.last_checkpoint.filename: a file name,"),
        (["callbacks.checkpoint.filename=.."], "callbacks.checkpoint.filename: a file name, not a path, got '..'"),
        # A quoting slip: a class no captcha's symbol is.
        (["charset.symbols='2345678 bcdefgmnpwxy'"], r"charset.symbols: '2345678 bcdefgmnpwxy' holds whitespace"),
    ],
)
def test_settings_that_reach_past_the_run_or_nothing_fail_before_data(make_cfg, overrides, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        validate(make_cfg(*overrides))


def test_a_checkpoint_name_may_hold_metric_fields_with_a_slash(make_cfg):
    """Lightning fills {val/seq_acc:.3f} with the value: no folder in the name."""
    validate(make_cfg("callbacks.checkpoint.filename='{epoch}-{val/seq_acc:.3f}'"))


def test_a_logger_dir_holding_another_runs_events_is_refused(make_cfg, tmp_path):
    """Its curves and plots would mix with this run's; an empty or new folder is the user's choice."""
    other = tmp_path / "other"
    other.mkdir()
    validate(make_cfg(f"logger.save_dir={other}"))
    (other / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    with pytest.raises(ConfigError, match=f"^logger.save_dir: {other} holds another run's events"):
        validate(make_cfg(f"logger.save_dir={other}"))
    validate(make_cfg(f"logger.save_dir={other}", "logger.version=v2"))  # a folder of its own inside it
