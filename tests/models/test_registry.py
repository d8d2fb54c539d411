"""Every registered net rebuilds from its own spec and declares its decoding family."""

import math
import pkgutil

import pytest
import torch

from captcha_lab import models
from captcha_lab.data.charset import PAD
from captcha_lab.models.registry import build_net, net_class

CLASSES, LENGTH = 7, 5


def net_kinds() -> list[str]:
    """Every kind the package holds: its modules that define a net."""
    kinds = []
    for info in pkgutil.iter_modules(models.__path__):
        try:
            net_class(info.name)
        except ValueError:
            continue
        kinds.append(info.name)
    return kinds


@pytest.mark.parametrize("kind", net_kinds())
def test_net_rebuilds_from_its_spec_and_declares_its_decoding(kind):
    torch.manual_seed(0)
    net = net_class(kind)(num_classes=CLASSES, length=LENGTH)
    assert net.spec["kind"] == kind
    assert (net.spec["num_classes"], net.spec["length"], list(net.spec["image_size"])) == (CLASSES, LENGTH, [50, 200])
    twin = build_net(net.spec)
    assert type(twin) is type(net) and twin.spec == net.spec
    assert {k: v.shape for k, v in twin.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}

    assert net.decoding in {"ctc", "per_position"}
    logits = net.eval()(torch.rand(2, 1, 50, 200))
    classes = CLASSES + 1 if net.decoding == "ctc" else CLASSES  # CTC's blank is one class more
    assert logits.shape[0] == 2 and logits.shape[-1] == classes
    if net.decoding == "per_position":
        assert logits.shape[1] == LENGTH
    log_probs = net.log_probs(logits)
    assert log_probs.shape == logits.shape
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(logits.shape[:-1]))
    targets = torch.tensor([[0, 1, 2, 3, 4], [5, 6, 0, 1, PAD if net.variable_length else 2]])
    loss = net.loss(logits, targets)
    assert loss.shape == () and math.isfinite(loss.item()) and loss.item() > 0
    index, confidence = net.decode(logits, LENGTH + 1)
    assert index.shape == (2, LENGTH + 1) and index.dtype == torch.long
    assert ((index == PAD) | ((0 <= index) & (index < CLASSES))).all()
    assert confidence.shape == (2,) and ((0 <= confidence) & (confidence <= 1)).all()


def test_the_kinds_are_found():  # else the test above would pass on none
    assert {"crnn", "report_cnn"} <= set(net_kinds())
