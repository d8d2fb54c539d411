"""Learning-rate schedules the configs name (conf/scheduler/), called as
factory(optimizer, total_steps=N) by CaptchaSystem.configure_optimizers."""

import math

import torch

from captcha_lab.errors import check_range


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup: float = 0.05
) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up over the first `warmup` fraction of the steps, then cosine decay to 0."""
    check_range("warmup", warmup, 0, 1, closed=True)  # a fraction of the steps
    warm = max(1, round(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
