"""The report's CNN: shapes, Keras sigmoid heads, spec rebuild, layer order, heads, overfitting."""

import torch
import torch.nn.functional as F

from captcha_lab.models.registry import build_net
from captcha_lab.models.report_cnn import Heads, ReportCNN


def test_trunk_and_head_shapes():
    net = ReportCNN(num_classes=19)
    x = torch.rand(3, 1, 50, 200)
    assert net.trunk(x).shape == (3, 32, 7, 25)
    assert net(x).shape == (3, 5, 19)
    assert net.heads.hidden.in_features == 5600


def test_sigmoid_heads_match_keras_categorical_crossentropy():
    net = ReportCNN(num_classes=4, head_activation="sigmoid")
    logits = torch.randn(2, 5, 4)
    p = torch.sigmoid(logits)
    keras = torch.log(p / p.sum(-1, keepdim=True))  # Keras normalises sigmoid outputs to sum 1
    torch.testing.assert_close(net.log_probs(logits), keras)
    softmax = ReportCNN(num_classes=4)
    torch.testing.assert_close(softmax.log_probs(logits), F.log_softmax(logits, -1))


def test_spec_rebuilds_the_same_net():
    net = ReportCNN(num_classes=7, activation="elu", hidden=8)
    twin = build_net(net.spec)
    assert twin.spec == net.spec
    twin.load_state_dict(net.state_dict())  # same parameter shapes


def test_one_batch_overfits():
    # The loss is below 0.03 after 9 steps; 20 leave a wide margin.
    torch.manual_seed(0)
    net = ReportCNN(num_classes=19, dropout=0.0)
    x, y = torch.rand(8, 1, 50, 200), torch.randint(0, 19, (8, 5))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(20):
        opt.zero_grad()
        loss = net.loss(net(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    with torch.no_grad():  # still train mode: BN's slow Keras momentum leaves running stats behind
        assert (net(x).argmax(-1) == y).all()


def test_pooling_before_monotonic_activation_matches_report_order():
    torch.manual_seed(0)
    net = ReportCNN(num_classes=19, activation="elu")
    conv1, pool1, act1, conv2, pool2, act2, *rest = net.trunk
    report_order = torch.nn.Sequential(conv1, act1, pool1, conv2, act2, pool2, *rest)
    x = torch.rand(4, 1, 50, 200).contiguous(memory_format=torch.channels_last)
    ours, theirs = net.trunk(x), report_order(x)
    assert torch.equal(ours, theirs)
    (g_ours,) = torch.autograd.grad(ours.square().sum(), conv1.weight)
    (g_theirs,) = torch.autograd.grad(theirs.square().sum(), conv1.weight)
    torch.testing.assert_close(g_ours, g_theirs)


def test_batched_heads_equal_separate_dense_heads():
    torch.manual_seed(0)
    heads = Heads(features=40, hidden=8, num_classes=6, length=5, activation="tanh", dropout=0.5).eval()
    z = torch.randn(3, 40)
    for i in range(5):
        dense1, dense2 = torch.nn.Linear(40, 8), torch.nn.Linear(8, 6)
        with torch.no_grad():
            dense1.weight.copy_(heads.hidden.weight[i * 8 : (i + 1) * 8])
            dense1.bias.copy_(heads.hidden.bias[i * 8 : (i + 1) * 8])
            dense2.weight.copy_(heads.weight[i].T)
            dense2.bias.copy_(heads.bias[i])
        torch.testing.assert_close(heads(z)[:, i], dense2(torch.tanh(dense1(z))))


def test_the_heads_dropout_is_on_in_training_only():
    torch.manual_seed(0)
    net, x = ReportCNN(num_classes=19), torch.rand(2, 1, 50, 200)
    assert not torch.equal(net.train()(x), net(x))  # two draws of the dropout masks
    assert torch.equal(net.eval()(x), net(x))


def test_gelu_keeps_the_reports_conv_activation_pool_order():
    """GELU is not monotonic, so pooling before it would compute another function: the trunk
    must match a plain conv -> GELU -> pool, which pool -> GELU does not."""
    torch.manual_seed(0)
    net = ReportCNN(num_classes=19, activation="gelu").eval()
    conv1, conv2 = [m for m in net.trunk if isinstance(m, torch.nn.Conv2d)][:2]
    rest = list(net.trunk)[6:]  # conv32, act, BN, pool: as in every order

    def reference(x, pool_first=False):
        for conv in (conv1, conv2):
            x = conv(x)
            x = F.gelu(F.max_pool2d(x, 2, ceil_mode=True)) if pool_first else F.max_pool2d(F.gelu(x), 2, ceil_mode=True)
        return torch.nn.Sequential(*rest)(x)

    x = 4 * torch.randn(2, 1, 50, 200)  # large enough to reach GELU's dip (below about -0.75)
    with torch.no_grad():
        torch.testing.assert_close(net.features(x), reference(x))
        assert (reference(x, pool_first=True) - reference(x)).abs().max() > 0.1
