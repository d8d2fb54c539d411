"""train.py's config: every option composes and builds; bad values and user errors fail as one clear line."""

import sys
import types
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import read_write
from omegaconf.errors import ConfigKeyError, ValidationError

from captcha_lab.cli.exits import user_errors
from captcha_lab.cli.train import build, train
from captcha_lab.cli.train_config import validate
from captcha_lab.data.images import IMAGE_SIZE
from captcha_lab.data.synthetic import set_folder
from captcha_lab.errors import ConfigError
from captcha_lab.models.registry import build_net
from captcha_lab.models.report_cnn import ReportCNN

from ..conftest import ROOT
from .conftest import TINY, run_main, tree_digest, warnings_printed

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


# Each option of every group once: the groups that can go together in rounds (round i takes
# option i, or option i mod n of a group with n), trainers and experiments alone.
TOGETHER = [g for g in GROUP_NAMES if g not in ("trainer", "experiment")]
ROUNDS = [
    *([f"{g}={GROUPS[g][i % len(GROUPS[g])]}" for g in TOGETHER] for i in range(max(map(len, GROUPS.values())))),
    *([f"{g}={o}"] for g in ("trainer", "experiment") for o in GROUPS[g]),
]
# A schedule-free optimizer takes no schedule (test_bad_values.py); the
# schedule its round drew is taken by another round (test_the_rounds_take_every_option).
for r in ROUNDS:
    if "optimizer=schedule_free" in r:
        r[:] = ["scheduler=none" if o.startswith("scheduler=") else o for o in r]


@pytest.mark.parametrize("overrides", ROUNDS, ids=" ".join)
def test_every_option_composes_and_instantiates(make_cfg, overrides):
    cfg = make_cfg(*overrides)
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        # Build the rest; a GPU trainer can only be instantiated where there is a GPU.
        instantiate(cfg.model, num_classes=len(cfg.charset.symbols), length=cfg.data.length)
        return
    datamodule, system, trainer = build(cfg)
    assert isinstance(trainer, L.Trainer)
    if cfg.scheduler:  # needs a fitting trainer for its step count: see test_scheduler_steps
        assert callable(system.scheduler_factory)
    else:
        assert isinstance(system.configure_optimizers(), torch.optim.Optimizer)
    assert system.charset.symbols == datamodule.hparams.symbols == datamodule.charset.symbols
    assert cfg.charset.symbols in ("auto", datamodule.charset.symbols)  # auto: the folder's own


def test_the_rounds_take_every_option():
    taken = {o for overrides in ROUNDS for o in overrides}
    assert taken == {f"{g}={o}" for g in GROUP_NAMES for o in GROUPS[g]}


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
        assert str(cfg.hydra.sweeper.params.seed) == "0,1,2", name  # the studies are three seeds per cell


@pytest.mark.parametrize(
    "override,error,match",
    [
        ("lrr=1e-3", ConfigCompositionException, "lrr"),  # a misspelt key
        ("optimizer=adamm", ConfigCompositionException, "adamm"),  # an unknown choice
        ("experiment=bestt", ConfigCompositionException, "bestt"),  # was optional: trained the defaults
        ("hparams_search=tpee", ConfigCompositionException, "tpee"),
        ("lr=abc", (ConfigCompositionException, ValidationError, ConfigKeyError), "lr"),  # a wrong type
    ],
)
def test_misspelt_keys_unknown_choices_and_wrong_types_fail(make_cfg, override, error, match):
    with pytest.raises(error, match=match):
        make_cfg(override)


@pytest.mark.parametrize("devices", ["trainer=ddp_cpu", "trainer.devices=2", "trainer.devices=[0,1]"])
def test_ddp_in_a_multirun_is_refused_however_it_is_asked_for(make_cfg, devices):
    # Each rank would run the whole sweep; with trainer.devices=2 (strategy auto: DDP) rank 0
    # waited for rank 1 forever, as rank 1 was refused the sweep dir rank 0 had taken.
    def in_a_multirun(cfg):
        with read_write(cfg.hydra):
            cfg.hydra.mode = RunMode.MULTIRUN
        HydraConfig.instance().set_config(cfg)
        return cfg

    with pytest.raises(ConfigError, match="^trainer: DDP cannot run inside a multirun"):
        validate(in_a_multirun(make_cfg(devices)))
    validate(in_a_multirun(make_cfg("trainer.devices=[0]")))  # one device


def user_error_dirs(root: Path) -> Path:
    """Folders that are no data: empty, text only, an unreadable image, a synthetic set whose
    manifest is not JSON (returned)."""
    (root / "empty").mkdir()
    (root / "text").mkdir()
    (root / "text" / "readme.md").write_text("x")
    (root / "bad").mkdir()
    (root / "bad" / "2b827.png").write_bytes(b"")
    # data.synthetic=5's set, with a manifest that is not JSON.
    manifest = set_folder(root / "syn", 5, 0, "2345678bcdefgmnpwxy", 5, IMAGE_SIZE) / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{bad")
    return manifest


def test_user_errors_are_one_clear_line_and_leave_earlier_runs_alone(make_cfg, tmp_path, one_epoch_run, capsys):
    manifest = user_error_dirs(tmp_path)
    last, real = one_epoch_run / "checkpoints" / "last.ckpt", ["data=captcha_v2"]
    cases = [  # (overrides, what the one line on stderr starts with); each exits 2
        (["+lrr=1"], "error: lrr: no such key (+lrr= adds one that nothing reads); the keys: lr, batch_size,"),
        ([*real, "data.dir="], "error: data.dir is empty; name a folder of images"),
        (["lr=-1"], "error: lr must be a positive number, got -1.0"),
        (["batch_size=0"], "error: batch_size must be at least 1, got 0"),
        (["epochs=0"], "error: epochs must be at least 1, got 0"),
        ([*real, f"data.test_dir={tmp_path}/nope"], f"error: data.test_dir: data folder not found: {tmp_path}/nope"),
        ([*real, f"data.dir={tmp_path}/empty"], f"error: no image files (.bmp, .gif, .jpeg, .jpg, .png, .tif, "
                                                f".tiff, .webp) in {tmp_path}/empty"),
        ([*real, f"data.dir={tmp_path}/text"], "error: no image files"),
        ([f"ckpt_path={tmp_path}/none.ckpt"], f"error: ckpt_path: no checkpoint file at {tmp_path}/none.ckpt"),
        ([f"ckpt_path={last}", "charset=report36"], f"error: {last}: trained on charset '2345678bcdefgmnpwxy'"),
        ([f"ckpt_path={last}", "model.hidden=32"], f"error: {last}: holds another net (model.hidden=64 there, 32 "
                                                   "here)"),
        ([f"ckpt_path={last}", "activation=tanh"], f"error: {last}: holds another net (model.activation='relu' "
                                                   "there, "),
        ([f"ckpt_path={last}", "data.length=4"], f"error: {last}: trained on another split (data.length=5 there, 4 "
                                                 "here)"),
        (["data.length=abc"], "error: data.length must be an integer, got 'abc'"),
        (["data.channels=true"], "error: data.channels must be an integer, got True"),
        (["charset.symbols=23456789"], "error: charset.symbols must be a string, got 23456789: quote digits"),
        (["data.test_fraction=1.5"], "error: data.test_fraction must be in [0, 1), got 1.5"),
        (["data.synthetic=5", f"data.dir={tmp_path}/text"], f"error: {tmp_path}/text holds files not made by"),
        (["data.synthetic=5", f"data.dir={tmp_path}/syn"], f"error: {manifest}: not a"),
        (["data.synthetic=5", f"data.dir={tmp_path}/text/readme.md"], f"error: {tmp_path}/text/readme.md: cannot"),
        (["data.synthetic=5", f"data.dir={tmp_path}/text/readme.md/x"], f"error: {tmp_path}/text/readme.md/x: "),
        ([f"ckpt_path={last}"], f"error: epochs=1: {last} has trained 1; nothing left to train"),
    ]  # fmt: skip
    before = tree_digest(one_epoch_run)
    for overrides, expected in cases:
        with pytest.raises(SystemExit) as stopped, warnings_printed():  # as a process prints them
            train(make_cfg(*overrides))
        stderr = capsys.readouterr().err
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert (stopped.value.code, "Traceback" not in stderr) == (2, True), (overrides, stderr)
        assert len(lines) == 1 and lines[0].startswith(expected), (overrides, stderr)
    assert tree_digest(one_epoch_run) == before


def test_command_line_errors_are_hydras_short_message_or_one_line_also_in_the_runs_log(tmp_path, tiny_dir):
    # Through hydra.main: its own messages (exit 1), a multirun's failed job, and the run's train.log.
    user_error_dirs(tmp_path)
    real = ["data=captcha_v2"]
    cases = [  # (overrides, exit code, what stderr's first line must say)
        (["lrr=1"], 1, "Could not override 'lrr'"),
        (["optimizer=adamm"], 1, "Could not find 'optimizer/adamm'"),
        (["lr=abc"], 1, "Error merging override lr=abc"),
        ([*real, f"data.dir={tmp_path}/nope"], 2, f"error: data.dir: data folder not found: {tmp_path}/nope"),
        ([*real, f"data.dir={tmp_path}/bad"], 2, f"error: no usable captcha images in {tmp_path}/bad"),
        (["-m", "trainer=ddp_cpu"], 2, "error: 1 sweep job(s) failed (0_synthetic-report_cnn-adam-lr0.001-relu); "
                                       "the first: trainer: DDP cannot run inside a multirun (-m, or an"),
        (["experiment=bestt"], 1, "Could not find 'experiment/bestt'"),  # was optional: trained the defaults
    ]  # fmt: skip
    runs = [tmp_path / f"run{i}" for i in range(len(cases))]
    for (overrides, code, expected), run in zip(cases, runs, strict=True):
        # -m first; each case's overrides after the tiny set's, so they win.
        argv = [*(a for a in overrides if a == "-m"), f"data.dir={tiny_dir}", *TINY]
        argv += [*(a for a in overrides if a != "-m"), f"hydra.run.dir={run}", f"hydra.sweep.dir={run}"]
        got_code, stderr = run_main("train.py", *argv)
        assert (got_code, "Traceback" not in stderr) == (code, True), (overrides, stderr)
        lines = [line for line in stderr.splitlines() if line.strip()]
        if code == 2:  # ours: exactly one line
            assert len(lines) == 1 and lines[0].startswith(expected), (overrides, stderr)
        else:  # Hydra's: a short message whose first line names the key
            assert expected in lines[0], (overrides, stderr)
    # A missing folder stops the run before its logger starts: no TensorBoard run for nothing.
    assert not list(runs[3].rglob("events.out.tfevents*"))
    assert f"error: data.dir: data folder not found: {tmp_path}/nope" in (runs[3] / "train.log").read_text()
    assert "could not be read: " in (runs[4] / "train.log").read_text()  # warnings reach the run's log


@pytest.fixture
def toy_models(monkeypatch):
    """captcha_lab.models.toy, as a newcomer's module might define its net: `Toy` kind 'toy' (right),
    `Misnamed` with another module's kind, `Fixed` without the min_length= train.py passes."""
    toy = types.ModuleType("captcha_lab.models.toy")

    class Toy(ReportCNN):
        def __init__(self, kind="toy", **kwargs):
            super().__init__(**kwargs)
            self.spec = {**self.spec, "kind": kind}

    class Misnamed(Toy):
        def __init__(self, **kwargs):
            super().__init__(kind="report_cnn", **kwargs)

    class Fixed(Toy):  # takes the config's keys and what train.py gives, but min_length
        def __init__(
            self, num_classes, length, image_size, in_channels, activation, dropout, hidden, head_activation, fused
        ):
            super().__init__(num_classes=num_classes, length=length, image_size=image_size, in_channels=in_channels)

    for net in (Toy, Misnamed, Fixed):
        net.__module__ = toy.__name__
        setattr(toy, net.__name__, net)
    monkeypatch.setitem(sys.modules, toy.__name__, toy)
    return toy


def test_a_new_model_needs_no_list_and_is_checked_before_training(make_cfg, toy_models, monkeypatch):
    # Before, a third step (a line in models/registry.py) was needed, and a run without it
    # trained and wrote checkpoints that neither predict.py nor a resume could rebuild.
    monkeypatch.delattr(toy_models, "Misnamed")
    monkeypatch.delattr(toy_models, "Fixed")
    _, system, _ = build(make_cfg("model._target_=captcha_lab.models.toy.Toy"))
    assert type(build_net(system.hparams["net_spec"])) is toy_models.Toy


def test_a_new_models_mistakes_fail_with_one_line(make_cfg, toy_models):
    with pytest.raises(ConfigError, match=r"^model: Misnamed's spec kind is 'report_cnn': it must be the name of"):
        build(make_cfg("model._target_=captcha_lab.models.toy.Misnamed"))
    # Was "drop it with ~model.min_length", which Hydra refuses: the key is not in the config.
    with pytest.raises(ConfigError, match=r"^model: Fixed must take min_length=; every model is given num_classes,"):
        build(make_cfg("model._target_=captcha_lab.models.toy.Fixed"))


def test_a_checkpoint_dir_holding_another_runs_checkpoints_is_refused(make_cfg, tmp_path):
    # last.ckpt there was silently replaced by this run's; best.ckpt's folder got best-v1.ckpt.
    other = tmp_path / "victim" / "checkpoints"
    other.mkdir(parents=True)
    validate(make_cfg(f"callbacks.last_checkpoint.dirpath={other}"))  # empty: a folder of its own is fine
    (other / "last.ckpt").write_bytes(b"weights")
    for name in ("last_checkpoint", "checkpoint"):
        with pytest.raises(ConfigError, match=rf"^callbacks.{name}.dirpath: {other} holds another run's checkpoints"):
            validate(make_cfg(f"callbacks.{name}.dirpath={other}"))
    validate(make_cfg(f"callbacks.last_checkpoint.dirpath={other}", f"ckpt_path={other / 'last.ckpt'}"))  # a resume


def test_ctrl_c_outside_fit_exits_130_in_one_line(capsys):
    with pytest.raises(SystemExit) as stopped, user_errors():
        raise KeyboardInterrupt
    assert stopped.value.code == 130 and capsys.readouterr().err == "error: interrupted\n"
