"""Optimizers with evaluation weights (schedule-free AdamW): the swap, and BatchNorm's statistics."""

import pytest
import torch
from schedulefree import AdamWScheduleFree
from torch import nn

from captcha_lab.training.eval_weights import EvalWeights, has_eval_weights


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.LazyLinear(3))


def _train(net, optimizer, swap: EvalWeights, batches: list[torch.Tensor]) -> None:
    for x in batches:
        swap.train([optimizer])
        swap.remember(x)
        net(x).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()


def test_only_optimizers_with_train_and_eval_have_eval_weights():
    params = [nn.Parameter(torch.zeros(1))]
    assert not has_eval_weights(torch.optim.Adam(params))
    assert has_eval_weights(AdamWScheduleFree(params))


def test_a_plain_optimizer_keeps_its_weights_statistics_and_no_batches():
    net = _net()
    net(torch.rand(2, 1, 6, 6))  # sizes the lazy layer
    optimizer, swap = torch.optim.Adam(net.parameters()), EvalWeights()
    _train(net, optimizer, swap, [torch.rand(2, 1, 6, 6) for _ in range(3)])
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    swap.eval([optimizer], net)
    assert not swap.recent
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in weights.items())


@pytest.mark.parametrize("chunk_bytes", [2**20, 2 * 4 * 36])  # one pass; two of 2 images each
def test_eval_swaps_in_the_average_and_its_statistics_and_train_swaps_back(chunk_bytes):
    net = _net()
    net(torch.rand(2, 1, 6, 6))
    optimizer, swap = AdamWScheduleFree(net.parameters(), lr=0.1), EvalWeights(images=4, chunk_bytes=chunk_bytes)
    batches = [torch.rand(2, 1, 6, 6) + i for i in range(5)]
    _train(net, optimizer, swap, batches)
    training = [p.clone() for p in net.parameters()]
    swap.eval([optimizer], net)
    assert not any(torch.equal(a, b) for a, b in zip(training, net.parameters(), strict=True))
    # The statistics are the evaluation weights' over the last 4 images (batches 3 and 4) only.
    features = net[0](torch.cat(batches[3:])).detach()
    torch.testing.assert_close(net[1].running_mean, features.mean((0, 2, 3)))
    assert net[1].momentum == 0.1 and net.training  # as they were
    swap.train([optimizer])
    for a, b in zip(training, net.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    # The window slides on across validations: next time, batches 4 and 5.
    batches.append(torch.rand(2, 1, 6, 6) + 5)
    _train(net, optimizer, swap, batches[5:])
    swap.eval([optimizer], net)
    torch.testing.assert_close(net[1].running_mean, net[0](torch.cat(batches[4:])).detach().mean((0, 2, 3)))


def test_eval_twice_or_before_any_step_changes_nothing():
    net = _net()
    net(torch.rand(2, 1, 6, 6))
    optimizer, swap = AdamWScheduleFree(net.parameters(), lr=0.1), EvalWeights()
    before = net[1].running_var.clone()
    swap.eval([optimizer], net)  # the sanity check's validation, before training
    assert torch.equal(net[1].running_var, before)
    _train(net, optimizer, swap, [torch.rand(2, 1, 6, 6)])
    swap.eval([optimizer], net)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    swap.eval([optimizer], net)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
