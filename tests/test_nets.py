import torch
import torch.nn.functional as F

from captcha_lab.nets import ReportCNN, build_net
from captcha_lab.system import CaptchaSystem


def test_trunk_and_head_shapes():
    net = ReportCNN(num_classes=19)
    x = torch.rand(3, 1, 50, 200)
    assert net.trunk(x).shape == (3, 32, 7, 25)
    assert net(x).shape == (3, 5, 19)
    assert [h[0].in_features for h in net.heads] == [5600] * 5


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
    torch.manual_seed(0)
    net = ReportCNN(num_classes=19, dropout=0.0)
    system = CaptchaSystem(net, symbols="2345678bcdefgmnpwxy")
    x, y = torch.rand(8, 1, 50, 200), torch.randint(0, 19, (8, 5))
    opt = torch.optim.Adam(system.parameters(), lr=1e-3)
    for _ in range(60):
        opt.zero_grad()
        loss = system.loss(system(x), y)
        loss.backward()
        opt.step()
    system.eval()
    assert loss.item() < 0.05
    assert (system(x).argmax(-1) == y).all()


def test_predict_text_decodes_argmax_with_confidence():
    system = CaptchaSystem(ReportCNN(num_classes=19), symbols="2345678bcdefgmnpwxy").eval()
    logits = torch.full((1, 5, 19), -10.0)
    for pos, idx in enumerate(system.charset.encode("2b827")):
        logits[0, pos, idx] = 10.0
    system.forward = lambda x: logits
    texts, confidence = system.predict_text(torch.zeros(1, 1, 50, 200))
    assert texts == ["2b827"] and 0.99 < confidence.item() <= 1.0


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
