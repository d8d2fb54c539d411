"""Learning-rate schedules (training.schedules)."""

import pytest
import torch

from captcha_lab.training.schedules import warmup_cosine


def test_scheduler_steps_warm_up_then_decay():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = warmup_cosine(optimizer, total_steps=100, warmup=0.1)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == 0.1 and lrs[9] == 1.0  # linear warm-up over 10 steps
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False)) and lrs[-1] < 0.01


@pytest.mark.parametrize("warmup", [-0.1, 1.5, "0.1"])
def test_warmup_outside_a_fraction_is_refused(warmup):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    with pytest.raises(ValueError, match="warmup must be a number in \\[0, 1\\]"):
        warmup_cosine(optimizer, total_steps=100, warmup=warmup)
