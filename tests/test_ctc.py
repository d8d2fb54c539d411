import pytest
import torch
import torch.nn.functional as F

from captcha_lab.charset import PAD, Charset
from captcha_lab.ctc import ctc_loss, greedy_decode
from captcha_lab.nets import CRNN, build_net
from captcha_lab.predict import Predictor
from captcha_lab.system import CaptchaSystem

BLANK = 3  # 3 symbols + blank
SYMBOLS = "2345678bcdefgmnpwxy"


def frames(*path: int) -> torch.Tensor:
    """One sequence whose best path is `path`: (1, T, 4) log-probabilities."""
    logits = torch.full((1, len(path), BLANK + 1), -10.0)
    logits[0, torch.arange(len(path)), torch.tensor(path)] = 10.0
    return F.log_softmax(logits, -1)


def test_greedy_merges_repeats_and_drops_blanks():
    decoded, confidence = greedy_decode(frames(BLANK, 0, 0, BLANK, 1, 1, 1, BLANK), width=4)
    assert decoded.tolist() == [[0, 1, PAD, PAD]]
    assert 0.99 < confidence.item() <= 1.0


def test_greedy_keeps_repeats_split_by_a_blank():
    decoded, _ = greedy_decode(frames(2, 2, BLANK, 2, 0, BLANK, 0), width=5)
    assert decoded.tolist() == [[2, 2, 0, 0, PAD]]


def test_greedy_all_blank_is_empty_and_long_reads_are_cut():
    assert greedy_decode(frames(BLANK, BLANK), width=2)[0].tolist() == [[PAD, PAD]]
    assert greedy_decode(frames(0, 1, 2, 0, 1), width=3)[0].tolist() == [[0, 1, 2]]


def test_ctc_loss_prefers_the_right_label_and_ignores_padding():
    log_probs = frames(BLANK, 0, BLANK, 0, 1)
    right, wrong = torch.tensor([[0, 0, 1, PAD]]), torch.tensor([[1, 0, 0, PAD]])
    assert ctc_loss(log_probs, right) < 0.01 < ctc_loss(log_probs, wrong)
    torch.testing.assert_close(ctc_loss(log_probs, right), ctc_loss(log_probs, right[:, :3]))


@pytest.mark.parametrize("rnn", ["gru", "none"])
def test_crnn_shapes_and_spec_rebuild(rnn):
    net = CRNN(num_classes=19, length=6, channels=(8, 16, 16), hidden=16, rnn=rnn)
    out = net(torch.rand(2, 1, 50, 200))
    assert out.shape == (2, 25, 20)  # 200 px / 2^3 frames, 19 symbols + blank
    twin = build_net(net.spec)
    twin.load_state_dict(net.state_dict())
    assert twin.spec == net.spec


def test_crnn_activation_is_its_conv_blocks_and_older_specs_read_relu():
    # activation= was silently ignored for model=crnn (same net, same metrics.json).
    def kinds(net):
        return {type(m) for m in net.modules() if type(m) in (torch.nn.ReLU, torch.nn.Tanh)}

    tanh = CRNN(num_classes=19, channels=(8,), width_halvings=1, hidden=16, context=1, activation="tanh")
    assert kinds(tanh) == {torch.nn.Tanh} and build_net(tanh.spec).spec["activation"] == "tanh"
    older = {k: v for k, v in tanh.spec.items() if k != "activation"}  # a checkpoint from before the key
    assert kinds(build_net(older)) == {torch.nn.ReLU}
    with pytest.raises(ValueError, match="unknown activation 'tanhh'"):
        CRNN(num_classes=19, activation="tanhh")


@pytest.mark.parametrize("context, frames", [(0, (1, 3)), (3, (7, 11))])
def test_frame_convs_let_each_frame_see_a_whole_character(context, frames):
    # One 8-px frame of a 15-px-wide trunk view cannot see a ~30-px character; 3 context convs
    # (kernel 3, 8 px apart) widen it to 63 px. Measured: which frames a one-column edit reaches.
    torch.manual_seed(0)
    net = CRNN(num_classes=19, channels=(8, 8, 8), hidden=16, context=context, rnn="none").eval()
    x = torch.rand(1, 1, 50, 200)
    edited = x.clone()
    edited[..., 100] = 1 - edited[..., 100]
    with torch.no_grad():
        changed = (net(edited) - net(x)).abs().amax(-1)[0] > 1e-6  # (T,)
    assert frames[0] <= int(changed.sum()) <= frames[1]


def test_reads_and_metrics_for_variable_length_labels():
    system = CaptchaSystem(CRNN(num_classes=19, length=6, channels=(8, 8, 8), hidden=8), symbols=SYMBOLS)
    labels = ["2b8", "cdef", "gmnpw", "xy2345"]
    blank = 19
    logits = torch.full((4, 25, 20), -10.0)
    logits[:, :, blank] = 10.0
    for row, text in enumerate(labels):  # each symbol on every 3rd frame, blanks between
        for k, index in enumerate(system.charset.encode(text)):
            logits[row, 3 * k + 1, index], logits[row, 3 * k + 1, blank] = 10.0, -10.0
    system.net.forward = lambda x: logits
    texts, confidence = Predictor(system.net, SYMBOLS).read(torch.zeros(4, 1, 50, 200))
    assert texts == labels and (confidence > 0.99).all()
    y = torch.tensor([system.charset.encode(t) + [PAD] * (6 - len(t)) for t in labels])
    system.metrics["val_metrics"](system._as_classes(system.decode(logits)[0]), system._as_classes(y))
    metrics = system.metrics["val_metrics"].compute()
    assert metrics["val/seq_acc"] == 1 and metrics["val/char_acc"] == 1 and metrics["val/acc_pos6"] == 1


def test_metrics_count_a_too_long_read_wrong():
    system = CaptchaSystem(CRNN(num_classes=19, length=5, channels=(8, 8, 8), hidden=8), symbols=SYMBOLS)
    target = torch.tensor([[0, 1, 2, 3, PAD]])
    for read, seq_acc in [([0, 1, 2, 3, PAD, PAD], 1.0), ([0, 1, 2, 3, 4, PAD], 0.0), ([0, 1, 2, PAD, PAD, PAD], 0.0)]:
        metrics = system.metrics["test_metrics"]
        metrics.reset()
        metrics(system._as_classes(torch.tensor([read])), system._as_classes(target))
        assert metrics.compute()["test/seq_acc"] == seq_acc


def test_texts_drop_padding_of_shorter_labels():
    charset = Charset(SYMBOLS)
    padded = torch.tensor([charset.encode("2b82") + [PAD], charset.encode("2b827")])
    assert charset.texts(padded) == ["2b82", "2b827"]  # PAD (-1) must not read as the last symbol


def test_position_accuracies_stay_apart_after_equal_first_batch():
    # Two positions equally right in the first batch must not share state afterwards
    # (torchmetrics' compute groups would merge them).
    system = CaptchaSystem(CRNN(num_classes=19, length=2, channels=(8, 8, 8), hidden=8), symbols=SYMBOLS)
    metrics = system.metrics["val_metrics"]
    target = torch.tensor([[0, 1]])
    metrics.update(system._as_classes(torch.tensor([[0, 1]])), system._as_classes(target))  # both right
    metrics.update(system._as_classes(torch.tensor([[0, 2]])), system._as_classes(target))  # 2nd wrong
    values = metrics.compute()
    assert values["val/acc_pos1"] == 1 and values["val/acc_pos2"] == 0.5
