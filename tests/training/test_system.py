"""The training system: augmentation applies to training batches only."""

import torch

from captcha_lab.data.augment import Augment
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
