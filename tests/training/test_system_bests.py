"""The system's epoch values, driven step by step without a Trainer: each epoch's loss is a mean
over its own rows, the bests are the extremes over real epochs (not the sanity check's) and are
saved in checkpoints, and val/ckpt_score is seq_acc with char_acc breaking ties."""

import pytest
import torch

from captcha_lab.models.report_cnn import ReportCNN
from captcha_lab.training.system import CaptchaSystem

SYMBOLS = "2345678bcdefgmnpwxy"


class Trainer:
    """What the system reads of its trainer at an epoch's end."""

    sanity_checking = False


def make_system(logged: dict) -> CaptchaSystem:
    """A system whose logged values land in `logged`."""
    system = CaptchaSystem(ReportCNN(num_classes=19), symbols=SYMBOLS)
    system.trainer = Trainer()
    system.log = lambda name, value, **k: logged.__setitem__(name, float(value))
    return system


def feed(system: CaptchaSystem, split: str, rows: int, loss: float, right_chars: int = 5) -> None:
    """One batch of `rows` captchas, each read with its first `right_chars` characters right, at
    this loss."""
    y = torch.zeros(rows, 5, dtype=torch.long)
    logits = torch.zeros(rows, 5, 19)
    logits[:, :right_chars, 0] = logits[:, right_chars:, 1] = 1.0
    system.net.forward = lambda x: logits
    system.loss = lambda logits, target: torch.tensor(loss)
    step = system.training_step if split == "train" else system.validation_step
    system.train(split == "train")
    step((torch.zeros(rows, 1, 50, 200), y), 0)


def end_epoch(system: CaptchaSystem, split: str) -> None:
    (system.on_train_epoch_end if split == "train" else system.on_validation_epoch_end)()


@pytest.mark.parametrize("split", ["train", "val"])
def test_an_epochs_loss_leaves_out_the_previous_epochs_batches(split):
    """Guards the loss metric's reset after each epoch is logged."""
    logged = {}
    system = make_system(logged)
    feed(system, split, rows=2, loss=4.0, right_chars=0)
    end_epoch(system, split)
    assert logged[f"{split}/loss"] == 4.0
    feed(system, split, rows=2, loss=1.0)
    end_epoch(system, split)
    assert logged[f"{split}/loss"] == 1.0 and logged[f"{split}/seq_acc"] == 1.0


@pytest.mark.parametrize("split", ["train", "val"])
def test_the_loss_is_a_mean_over_rows_so_a_small_last_batch_weighs_less(split):
    """Guards the loss's weight=rows: a mean of batch means would weigh a 1-row batch as 3 rows."""
    logged = {}
    system = make_system(logged)
    feed(system, split, rows=3, loss=1.0)
    feed(system, split, rows=1, loss=5.0)
    end_epoch(system, split)
    assert logged[f"{split}/loss"] == pytest.approx((3 * 1.0 + 5.0) / 4)


def test_the_bests_are_the_lowest_loss_and_highest_seq_acc_so_far():
    """Guards val/loss_best as a min and val/seq_acc_best as a max, each over epochs, not the
    epoch's own value."""
    logged, bests = {}, []
    system = make_system(logged)
    for loss, right_chars in [(2.0, 0), (1.0, 5), (3.0, 0)]:
        feed(system, "val", rows=2, loss=loss, right_chars=right_chars)
        end_epoch(system, "val")
        bests.append((logged["val/loss_best"], logged["val/seq_acc_best"]))
    assert bests == [(2.0, 0.0), (1.0, 1.0), (1.0, 1.0)]


def test_ckpt_score_is_seq_acc_with_char_acc_breaking_ties():
    """Guards ckpt_score's argument order: (seq_acc, char_acc), not the reverse."""
    logged = {}
    system = make_system(logged)
    feed(system, "val", rows=2, loss=1.0)  # both read right
    feed(system, "val", rows=2, loss=1.0, right_chars=4)  # 4 of 5 characters right
    end_epoch(system, "val")
    assert (logged["val/seq_acc"], logged["val/char_acc"]) == pytest.approx((0.5, 0.9))
    assert logged["val/ckpt_score"] == pytest.approx(0.5 + 1e-6 * 0.9, abs=1e-9)


def test_the_sanity_check_is_kept_out_of_the_bests():
    """Guards the sanity_checking test: Lightning's check before training, here better than the
    first epoch, must not become the best."""
    logged = {}
    system = make_system(logged)
    system.trainer.sanity_checking = True
    feed(system, "val", rows=2, loss=0.1)
    end_epoch(system, "val")
    assert "val/loss_best" not in logged and "val/ckpt_score" not in logged
    system.trainer.sanity_checking = False
    feed(system, "val", rows=2, loss=2.0, right_chars=0)
    end_epoch(system, "val")
    assert (logged["val/loss_best"], logged["val/seq_acc_best"]) == (2.0, 0.0)


def test_the_bests_are_saved_in_the_state_dict_and_restored():
    """Guards the bests' persistent(True): a run resumed from a checkpoint keeps its bests, so a
    worse epoch after the resume does not become the best."""
    system = make_system({})
    feed(system, "val", rows=2, loss=1.0)
    end_epoch(system, "val")
    state = system.state_dict()
    assert {"val_seq_acc_best.max_value", "val_loss_best.min_value"} <= set(state)
    logged = {}
    resumed = make_system(logged)
    resumed.load_state_dict(state)
    feed(resumed, "val", rows=2, loss=3.0, right_chars=0)
    end_epoch(resumed, "val")
    assert (logged["val/loss_best"], logged["val/seq_acc_best"]) == (1.0, 1.0)
