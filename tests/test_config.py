import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf.errors import ConfigKeyError, ValidationError

from captcha_lab.errors import ConfigError
from captcha_lab.pipeline import build, validate

ROOT = Path(__file__).resolve().parents[1]
GROUP_NAMES = (
    "charset",
    "data",
    "model",
    "activation",
    "optimizer",
    "scheduler",
    "augment",
    "trainer",
    "logger",
    "callbacks",
    "experiment",
)
GROUPS = {g: sorted(p.stem for p in (ROOT / "conf" / g).glob("*.yaml")) for g in GROUP_NAMES}


def test_every_group_has_options():
    assert all(GROUPS[g] for g in GROUPS if g != "experiment"), GROUPS


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_option_composes_and_instantiates(make_cfg, group, option):
    cfg = make_cfg(f"{group}={option}")
    if group in ("trainer",) and cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        # Build the rest; a GPU trainer can only be instantiated where there is a GPU.
        instantiate(cfg.model, num_classes=len(cfg.charset.symbols), length=cfg.data.length)
        assert cfg.trainer.accelerator == "gpu"
        return
    datamodule, system, trainer = build(cfg)
    assert isinstance(trainer, L.Trainer)
    if cfg.scheduler:  # needs a fitting trainer for its step count: see test_scheduler_steps
        assert callable(system.scheduler_factory)
    else:
        assert isinstance(system.configure_optimizers(), torch.optim.Optimizer)
    assert datamodule.hparams.symbols == cfg.charset.symbols


def test_report_command_sets(make_cfg):
    cfg = make_cfg("optimizer=sgd", "lr=1e-4", "activation=tanh")
    _, system, _ = build(cfg)
    opt = system.configure_optimizers()
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["lr"] == 1e-4 and opt.defaults["momentum"] == 0.9
    assert any(isinstance(m, torch.nn.Tanh) for m in system.net.trunk)
    assert "sgd-lr0.0001-tanh" in cfg.run_name


def test_activation_reaches_the_crnn_and_the_report_sweeps_need_no_dash_m(make_cfg):
    _, system, _ = build(make_cfg("model=crnn", "activation=tanh"))
    assert any(isinstance(m, torch.nn.Tanh) for m in system.net.trunk.modules())
    for name in ("report_optimizers", "report_lr", "report_activations"):
        cfg = make_cfg(f"experiment={name}")  # `train.py experiment=report_lr` trained one default job
        assert str(cfg.hydra.mode).endswith("MULTIRUN") and cfg.hydra.sweeper.params, name


def test_misspelt_key_fails(make_cfg):
    with pytest.raises(ConfigCompositionException, match="lrr"):
        make_cfg("lrr=1e-3")


def test_unknown_choice_fails(make_cfg):
    with pytest.raises(ConfigCompositionException, match="adamm"):
        make_cfg("optimizer=adamm")


def test_wrong_type_fails(make_cfg):
    with pytest.raises((ConfigCompositionException, ValidationError, ConfigKeyError), match="lr"):
        make_cfg("lr=abc")


@pytest.mark.parametrize("override,key", [("lr=-1", "lr"), ("batch_size=0", "batch_size"), ("epochs=0", "epochs")])
def test_out_of_range_values_fail_before_data(make_cfg, override, key):
    with pytest.raises(ConfigError, match=f"^{key} must be"):
        validate(make_cfg(override))


def test_trainer_max_epochs_follows_epochs(make_cfg):
    # Lightning asserted an int only once fit had started (a traceback after the logger began).
    with pytest.raises(ConfigError, match=r"^trainer.max_epochs follows epochs=; set that instead \(got abc\)$"):
        validate(make_cfg("trainer.max_epochs=abc"))


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.fused=abc", "model: fused must be true or false, got 'abc'"),
        ("model.head_activation=relu", "model: head_activation must be one of"),
        ("+model.depth=3", "model: .*unexpected keyword argument 'depth'"),
        ("model.hidden=0", r"model: hidden must be an integer >= 1, got 0$"),  # a reshape error at the first step
        ("model.dropout=1.5", r"model: dropout must be a number in \[0, 1\), got 1.5$"),
    ],
)
def test_bad_model_values_fail_with_the_nets_message(make_cfg, override, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        build(make_cfg(override))


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data.test_fraction=2"], r"data.test_fraction must be in \[0, 1\), got 2"),  # raised inside instantiate
        (["data.fold=2"], "data.fold=2 needs data.folds > 1"),  # would be ignored: five equal 'folds'
        (["model=crnn", "label_smoothing=0.1"], "label_smoothing: CTC"),
        (["model=crnn", "model.rnn_layers=0"], r"model: rnn_layers must be an integer >= 1, got 0$"),
        # Checked before the Trainer, which needs no GPU for it; on one, the first backward failed.
        (["model=crnn", "trainer=gpu", "trainer.deterministic=true"], "trainer.deterministic=true: CUDA's CTC"),
        # Lightning's own checks of the Trainer's arguments (a MisconfigurationException traceback).
        (["trainer.devices=0"], r"trainer: `Trainer\(devices=0\)` value is not a valid input"),
        (["model=crnn", "model.channels=[]"], r"model: channels must list at least one conv's width"),
        (["model=crnn", "model.width_halvings=4"], r"model: width_halvings must be at most len\(channels\) = 3"),
        # The generator would loop forever for labels it cannot make; it raised a traceback.
        (["data.synthetic=30", "data.length=1"], "data.synthetic: 30 captchas need as many distinct labels, but 19"),
        # Built only when fit starts (partials): each ended in a traceback after the logger began.
        (["optimizer=sgd", "optimizer.momentum=-1"], "optimizer: Invalid momentum value: -1"),
        (["optimizer.eps=abc"], "optimizer: "),
        (["scheduler=onecycle", "scheduler.pct_start=2"], "scheduler: Expected float between 0 and 1 pct_start"),
        (["augment=light", "augment.degrees=abc"], "augment: degrees must be a number >= 0, got 'abc'$"),
        (["augment=light", "augment.erase=2"], r"augment: erase must be a number in \[0, 1\], got 2$"),
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
def test_bad_data_and_loss_values_fail_with_one_line(make_cfg, overrides, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        build(make_cfg(*overrides))


def test_cli_user_error_is_one_line(tmp_path):
    run = subprocess.run(
        [sys.executable, "train.py", "lr=-1", f"hydra.run.dir={tmp_path}/run"], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 2
    assert run.stderr.strip() == "error: lr must be a positive number, got -1.0"


def test_scheduler_steps_warm_up_then_decay():
    from captcha_lab.system import warmup_cosine

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = warmup_cosine(optimizer, total_steps=100, warmup=0.1)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == 0.1 and lrs[9] == 1.0  # linear warm-up over 10 steps
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False)) and lrs[-1] < 0.01
