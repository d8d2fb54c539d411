"""The training system: augmentation applies to training batches only; unwritable labels; its summary."""

import torch
from lightning.pytorch.utilities.model_summary import ModelSummary
from torch.utils.flop_counter import FlopCounterMode

from captcha_lab.data.augment import Augment
from captcha_lab.data.charset import UNKNOWN, Charset
from captcha_lab.models.report_cnn import ReportCNN
from captcha_lab.training.system import CaptchaSystem

STRONG = dict(degrees=5, translate=0.05, scale=0.08, shear=10, elastic=0.01, noise=0.05, erase=1.0)


def test_only_training_batches_are_augmented():
    x = torch.rand(3, 1, 50, 200)
    seen = []
    system = CaptchaSystem(ReportCNN(num_classes=19), symbols="2345678bcdefgmnpwxy", augment=Augment(**STRONG))
    system.net.forward = lambda batch: seen.append(batch.clone()) or torch.zeros(len(batch), 5, 19, requires_grad=True)
    system.log = lambda *a, **k: None
    y = torch.zeros(3, 5, dtype=torch.long)
    system.train()
    system.training_step((x, y), 0)
    system.eval()
    system.validation_step((x, y), 0)
    assert not torch.equal(seen[0], x)  # training batches are augmented
    assert torch.equal(seen[1], x)  # validation batches are not


def test_a_test_label_with_an_unwritable_symbol_is_a_misread_without_loss():
    symbols = "2345678bcdefgmnpwxy"
    system = CaptchaSystem(ReportCNN(num_classes=19), symbols=symbols)
    y = torch.tensor([[0, 1, 2, 3, 4], [0, 1, 2, 3, UNKNOWN], [5, 6, 7, 8, 9]])  # row 1: a symbol not in symbols
    logits = torch.full((3, 5, 19), -20.0)
    logits[[0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2], list(range(5)) * 3, [0, 1, 2, 3, 4] * 2 + [5, 6, 7, 8, 9]] = (
        20
    )
    system.net.forward = lambda batch: logits
    system.eval()
    system.test_step((torch.zeros(3, 1, 50, 200), y), 0)
    scores = system.metrics["test_metrics"].compute()
    assert scores["test/seq_acc"] == torch.tensor(2 / 3)  # read everything it could; still wrong
    assert scores["test/char_acc"] == torch.tensor(14 / 15)
    assert system.losses["test_loss"].compute() < 1e-3  # the two writable rows only
    assert Charset(symbols).texts(y)[1] == "2345\ufffd"


def test_a_split_with_no_writable_label_is_logged_and_reset():
    """Its accuracies count (every read is wrong) and its loss is NaN; nothing carries over into
    the next split scored with test_step (eval.py scores test, val and train in turn)."""
    system = CaptchaSystem(ReportCNN(num_classes=19), symbols="2345678bcdefgmnpwxy")
    logged = {}
    system.log = lambda name, value, **k: logged.__setitem__(name, float(value))
    system.eval()
    system.test_step((torch.zeros(2, 1, 50, 200), torch.full((2, 5), UNKNOWN)), 0)
    system.on_test_epoch_end()
    assert logged["test/seq_acc"] == 0 and torch.isnan(torch.tensor(logged["test/loss"]))
    assert system.metrics["test_metrics"].update_count == 0  # reset for the next split


def test_the_model_summary_counts_every_layers_flops():
    # The fused first conv (models.kernels) is invisible to the FLOP counter: the summary's
    # example image must take PyTorch's own ops, whatever the net's default.
    system = CaptchaSystem(ReportCNN(num_classes=19, in_channels=1), symbols="2345678bcdefgmnpwxy")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        ReportCNN(num_classes=19, fused=False)(torch.zeros(1, 1, 50, 200))
    summary = ModelSummary(system)
    assert summary.total_flops == counter.get_total_flops() > 40e6  # 41.5 MFLOP: conv1 included
    assert summary.in_sizes[0] == [1, 1, 50, 200] and summary.out_sizes[0] == [1, 5, 19]


def test_a_schedule_steps_every_batch():
    # Stepped per epoch, a warm-up over 10% of the steps would last the whole run.
    system = CaptchaSystem(ReportCNN(num_classes=19), "2345678bcdefgmnpwxy", scheduler=lambda opt, total_steps: None)
    system.trainer = type("T", (), {"estimated_stepping_batches": 100})()
    assert system.configure_optimizers()["lr_scheduler"]["interval"] == "step"
