"""Resume checks (ckpt_path=): the checkpoint must fit the system and split the same images."""

import logging
import re
import shutil

import pytest
import torch

from captcha_lab.cli.train import build, init_weights
from captcha_lab.data.datamodule import CaptchaDataModule
from captcha_lab.models.checkpoint import CheckpointError
from captcha_lab.training.resume import check_resumable, init_overlap

from ..models.fake_checkpoints import fake_checkpoint


def test_resuming_with_another_charset_is_a_clear_error(make_cfg, tmp_path):
    path = fake_checkpoint(make_cfg, tmp_path / "v2.ckpt")
    _, system36, _ = build(make_cfg("charset=report36"))
    with pytest.raises(CheckpointError, match="trained on charset"):
        check_resumable(path, system36)


def test_resuming_on_another_split_is_a_clear_error(make_cfg, tmp_path):
    datamodule, system, _ = build(make_cfg())
    path, data = fake_checkpoint(make_cfg, tmp_path / "run.ckpt"), dict(datamodule.hparams)
    torch.save({**torch.load(path, weights_only=True), "datamodule_hyper_parameters": data}, path)

    def resumable(**changes) -> int:
        return check_resumable(path, system, CaptchaDataModule(**{**data, **changes}))

    assert resumable(batch_size=8, dir=data["dir"] + "/.") == 0  # same split
    other = shutil.copytree(data["dir"], tmp_path / "other")
    for key, value in [("seed", 1), ("val_fraction", 0.3), ("dir", str(other))]:
        # seed 1 would put most of seed 0's test images into its training split
        with pytest.raises(CheckpointError, match=rf"run.ckpt: trained on another split \(data.{key}=.* there, "):
            resumable(**{key: value})
    assert resumable(num_workers=2) == 0


def test_ckpt_init_from_a_run_that_split_the_folder_otherwise_warns(make_cfg, tmp_path, caplog):
    # A warm start may fine-tune on the same images, but seed 1's val and test then hold images
    # that seed 0's weights trained on: its scores would read better than they are.
    datamodule, system, _ = build(make_cfg())
    path, data = fake_checkpoint(make_cfg, tmp_path / "run.ckpt"), dict(datamodule.hparams)
    torch.save({**torch.load(path, weights_only=True), "datamodule_hyper_parameters": data}, path)
    ckpt = torch.load(path, weights_only=True)
    assert init_overlap(path, ckpt, CaptchaDataModule(**{**data, "batch_size": 8})) is None  # the same split
    other = shutil.copytree(data["dir"], tmp_path / "other")
    assert init_overlap(path, ckpt, CaptchaDataModule(**{**data, "dir": str(other)})) is None  # other images
    reseeded = CaptchaDataModule(**{**data, "seed": 1})
    assert init_overlap(path, ckpt, reseeded).endswith(" otherwise (data.seed=0 there, 1 here)")
    scored = CaptchaDataModule(**{**data, "dir": str(other), "test_dir": data["dir"]})  # tests what it trained on
    assert init_overlap(path, ckpt, scored).endswith(
        f"its run trained on {data['dir']}, which data.test_dir scores here"
    )
    tested = {**data, "test_dir": str(other)}  # a test folder of its own, then another: dir split alike
    assert (
        init_overlap(
            path,
            {**ckpt, "datamodule_hyper_parameters": tested},
            CaptchaDataModule(**{**tested, "test_dir": str(shutil.copytree(other, tmp_path / "third"))}),
        )
        is None
    )
    # Its run held out a test_fraction of the folder; here that share trains and validates.
    elsewhere = init_overlap(path, ckpt, CaptchaDataModule(**{**data, "test_dir": str(other)}))
    assert elsewhere.endswith(f" otherwise (data.test_dir=None there, {str(other)!r} here)")
    moved = {**ckpt, "CaptchaDataModule": {"images": 1, "names_sha1": "0"}}  # its folder held other images then
    assert "which now holds" in init_overlap(path, moved, CaptchaDataModule(**{**data, "batch_size": 8}))
    with caplog.at_level(logging.WARNING):
        init_weights(system.net, str(path), reseeded)
    assert "val/ and test/ scores may count images those weights trained on" in caplog.text


def test_resuming_after_the_folder_changed_is_a_clear_error(make_cfg, tmp_path, tiny_dir):
    # Same settings, one image fewer: every split reshuffles, and test images would be trained on.
    folder = tmp_path / "captchas"
    shutil.copytree(tiny_dir, folder)
    cfg = make_cfg(f"data.dir={folder}", "data.synthetic=0")
    datamodule, system, _ = build(cfg)
    datamodule.setup("fit")
    path = fake_checkpoint(make_cfg, tmp_path / "run.ckpt")
    saved = {**torch.load(path, weights_only=True), "datamodule_hyper_parameters": dict(datamodule.hparams)}
    torch.save({**saved, "CaptchaDataModule": datamodule.state_dict()}, path)  # where Lightning puts it
    assert datamodule.state_dict()["images"] == len(list(tiny_dir.glob("*.png")))
    again, _, _ = build(cfg)
    assert check_resumable(path, system, again) == 0 and again.source == datamodule.source  # it reads them
    sorted(folder.glob("*.png"))[3].unlink()
    fewer, _, _ = build(cfg)
    n = datamodule.state_dict()["images"]
    with pytest.raises(
        CheckpointError, match=rf"run.ckpt: its run split {n} usable images of .*, which now holds {n - 1}: "
    ):
        check_resumable(path, system, fewer)


def test_a_crnn_checkpoint_from_before_min_length_still_resumes_and_initialises(make_cfg, tmp_path):
    # min_length changes how reads are held, not the weights (models.base.READING_KEYS).
    datamodule, system, _ = build(make_cfg("model=crnn", "model.rnn=none"))
    assert system.hparams["net_spec"]["min_length"] == 5
    hparams = dict(system.hparams)
    hparams["net_spec"] = {k: v for k, v in hparams["net_spec"].items() if k != "min_length"}
    path = tmp_path / "old.ckpt"
    torch.save({"hyper_parameters": hparams, "state_dict": system.state_dict()}, path)
    assert check_resumable(path, system) == 0
    init_weights(system.net, str(path), datamodule)
    _, other, _ = build(make_cfg("model=crnn", "model.hidden=64"))
    with pytest.raises(CheckpointError, match="model.hidden=128 there, 64 here"):
        check_resumable(path, other)


def test_resuming_with_another_optimizer_is_a_clear_error(make_cfg, tmp_path):
    # torch would load Adam's state into SGD, which then fails at its first step on a KeyError.
    _, system, _ = build(make_cfg("optimizer=adam"))
    path = tmp_path / "adam.ckpt"
    adam = system.optimizer_factory(system.parameters())
    ckpt = {"hyper_parameters": dict(system.hparams), "state_dict": system.state_dict()}
    torch.save({**ckpt, "optimizer_states": [adam.state_dict()]}, path)
    assert check_resumable(path, build(make_cfg("optimizer=adam"))[1]) == 0
    # Other settings: torch would restore the checkpoint's lr, and the run be named after 0.1.
    with pytest.raises(
        CheckpointError, match=r"adam.ckpt: trained with optimizer lr=0.001 there, 0.1 here; resume with"
    ):
        check_resumable(path, build(make_cfg("optimizer=adam", "lr=0.1"))[1])
    for name, theirs in [("sgd", "amsgrad, betas"), ("schedule_free", "amsgrad, capturable")]:
        _, other, _ = build(make_cfg(f"optimizer={name}", "scheduler=none"))
        refused = rf"adam.ckpt: trained with another optimizer \(settings {theirs}.* here\)"
        with pytest.raises(CheckpointError, match=refused):
            check_resumable(path, other)


def test_a_checkpoint_missing_a_weight_is_refused_naming_it(make_cfg, tmp_path):
    _, system, _ = build(make_cfg())
    path = fake_checkpoint(make_cfg, tmp_path / "run.ckpt")
    ckpt = torch.load(path, weights_only=True)
    key = sorted(ckpt["state_dict"])[-1]
    del ckpt["state_dict"][key]
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=rf"does not fit this model \({re.escape(key)} is None there, "):
        check_resumable(path, system)
