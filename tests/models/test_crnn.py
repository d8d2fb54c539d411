"""The CRNN: output frames, spec rebuild, its activation, each frame's field of view, its frame
layers, its residual branches."""

import pytest
import torch
from torch import nn

from captcha_lab.models.crnn import CRNN, FrameConv, FrameNorm
from captcha_lab.models.registry import build_net


@pytest.mark.parametrize("rnn", ["gru", "none"])
def test_crnn_shapes_and_spec_rebuild(rnn):
    net = CRNN(num_classes=19, length=6, channels=(8, 16, 16), hidden=16, rnn=rnn)
    out = net(torch.rand(2, 1, 50, 200))
    assert out.shape == (2, 25, 20)  # 200 px / 2^3 frames, 19 symbols + blank
    twin = build_net(net.spec)
    twin.load_state_dict(net.state_dict())
    assert twin.spec == net.spec


@pytest.mark.parametrize("width, halvings, frames", [(32, 3, 4), (33, 3, 5), (32, 1, 16), (200, 3, 25)])
def test_crnn_frames_are_its_output_steps(width, halvings, frames):
    net = CRNN(num_classes=19, channels=(4, 4, 4), width_halvings=halvings, hidden=8, image_size=(50, width))
    assert net.frames == frames == net(torch.rand(1, 1, 50, width)).shape[1]


def test_crnn_activation_is_its_conv_blocks():
    def kinds(net):
        return {type(m) for m in net.modules() if type(m) in (torch.nn.ReLU, torch.nn.Tanh)}

    tanh = CRNN(num_classes=19, channels=(8,), width_halvings=1, hidden=16, context=1, activation="tanh")
    assert kinds(tanh) == {torch.nn.Tanh} and build_net(tanh.spec).spec["activation"] == "tanh"
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


@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_frame_layers_match_conv1d_and_batchnorm1d_on_frames_last(kernel):
    torch.manual_seed(0)
    frame_conv = FrameConv(6, 4, kernel, padding=kernel // 2, bias=True)
    conv = nn.Conv1d(6, 4, kernel, padding=kernel // 2)
    conv.load_state_dict(frame_conv.state_dict())  # same parameters, same names
    z = torch.randn(3, 9, 6, requires_grad=True)  # (B, T, C)
    out = frame_conv(z)
    torch.testing.assert_close(out, conv(z.transpose(1, 2)).transpose(1, 2))
    norm, reference = FrameNorm(4), nn.BatchNorm1d(4)
    torch.testing.assert_close(norm(out), reference(out.transpose(1, 2)).transpose(1, 2))
    torch.testing.assert_close(norm.running_var, reference.running_var)


@pytest.mark.parametrize(("setting", "value"), [("hidden", True), ("context", 2.5)])
def test_integer_settings_refuse_bools_and_fractions(setting, value):
    with pytest.raises(ValueError, match=f"{setting} must be an integer"):
        CRNN(19, **{setting: value})


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_context_and_rnn_are_residual_branches(rnn):
    """Each branch adds to its input: the logits are those computed by hand, and with the context
    convs' last norm and the RNN's weights zeroed (both branches output zeros) the head of the
    projection's frames, which pass straight through."""
    torch.manual_seed(0)
    net = CRNN(num_classes=19, channels=(8, 8, 8), hidden=16, context=2, rnn=rnn).eval()
    x = torch.rand(2, 1, 50, 200)
    with torch.no_grad():
        frames = net.project(net.trunk(x).permute(0, 3, 1, 2).flatten(2))  # (B, T, hidden)
        z = frames + net.context(frames)
        torch.testing.assert_close(net(x), net.head(z + net.rnn(z)[0]))
        for p in [*net.context[-1][1].parameters(), *net.rnn.parameters()]:
            p.zero_()
        torch.testing.assert_close(net(x), net.head(frames))
        assert not torch.allclose(net(x), net.head(torch.zeros_like(frames)))  # as without the inputs
