"""The fused conv-pool CPU kernel: PyTorch's values and gradients, fallbacks, thread count."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from captcha_lab.models.kernels import conv_pool, fits
from captcha_lab.models.report_cnn import ReportCNN


def reference(x: torch.Tensor, conv: torch.nn.Conv2d, relu: bool) -> torch.Tensor:
    out = F.max_pool2d(conv(x), 2, ceil_mode=True)
    return out.relu() if relu else out


def grads(out: torch.Tensor, conv: torch.nn.Conv2d, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(out, [conv.weight, conv.bias], grad)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(3, 50, 200, 16), (2, 7, 9, 16), (2, 6, 5, 3), (1, 1, 1, 2)])
def test_conv_pool_equals_conv_then_pool(shape, relu):
    n, h, w, c = shape  # odd sizes exercise ceil mode's partial windows
    torch.manual_seed(0)
    x, conv = torch.rand(n, 1, h, w), torch.nn.Conv2d(1, c, 3, padding=1)
    assert fits(x, conv)
    out, ref = conv_pool(x, conv, relu), reference(x, conv, relu)
    assert out.shape == ref.shape and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    grad = torch.randn_like(ref)
    for mine, theirs in zip(grads(out, conv, grad), grads(ref, conv, grad), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-4)


def test_ties_and_nan_pick_what_max_pool2d_picks():
    # An identity conv on a 0/1 image: most windows hold equal maxima, whose 3x3 neighbourhoods
    # differ. The gradient must reach the one max_pool2d picks (the first), or the weights'
    # gradients differ. A NaN pixel must come out as NaN.
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, 0, 1, 1] = 1.0
        conv.bias.zero_()
    x = torch.randint(0, 2, (2, 1, 9, 11)).float()
    grad = torch.randn(2, 2, 5, 6)
    torch.testing.assert_close(
        grads(conv_pool(x, conv), conv, grad), grads(reference(x, conv, False), conv, grad), rtol=0, atol=1e-6
    )
    x[0, 0, 0, 0] = float("nan")
    for relu in (False, True):  # ReLU's gradient at NaN is 1 in torch: the NaN reaches the weights
        out, ref = conv_pool(x, conv, relu), reference(x, conv, relu)
        torch.testing.assert_close(out, ref, equal_nan=True)
        torch.testing.assert_close(grads(out, conv, grad), grads(ref, conv, grad), equal_nan=True)


def test_infinity_in_the_last_row_of_an_odd_height():
    # The missing second row of the last windows must not turn an infinite value into NaN.
    conv = torch.nn.Conv2d(1, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.rand(1, 1, 5, 6)
    x[0, 0, 4, :2] = float("inf")
    torch.testing.assert_close(conv_pool(x, conv), reference(x, conv, False), equal_nan=True)


def test_weight_gradient_keeps_the_weights_layout():
    # DDP's gradient buckets are laid out like the parameters (channels_last in ReportCNN).
    conv = torch.nn.Conv2d(1, 16, 3, padding=1).to(memory_format=torch.channels_last)
    conv_pool(torch.rand(2, 1, 6, 8), conv).sum().backward()
    assert conv.weight.grad.stride() == conv.weight.stride()


@pytest.mark.parametrize("activation", ["relu", "elu", "gelu"])
def test_fused_report_cnn_computes_what_pytorch_ops_do(activation):
    torch.manual_seed(0)
    fused = ReportCNN(num_classes=19, activation=activation, dropout=0.0)
    plain = ReportCNN(num_classes=19, activation=activation, dropout=0.0, fused=False)
    plain.load_state_dict(fused.state_dict())
    assert fused.fused == (activation != "gelu")  # GELU is not monotonic: conv-act-pool, not fused
    x = torch.rand(4, 1, 50, 200)
    out_fused, out_plain = fused(x), plain(x)
    torch.testing.assert_close(out_fused, out_plain, rtol=1e-4, atol=1e-5)
    out_fused.square().sum().backward()
    out_plain.square().sum().backward()
    for (name, a), b in zip(fused.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-4, msg=name)


def test_falls_back_where_the_kernel_does_not_apply():
    conv = torch.nn.Conv2d(1, 16, 3, padding=1)
    x = torch.rand(2, 1, 50, 200)
    assert not fits(x.double(), conv)
    assert not fits(x.clone().requires_grad_(), conv)  # the kernel has no gradient for the image
    assert not fits(x, torch.nn.Conv2d(1, 16, 3, padding=1, bias=False))
    assert not fits(x, torch.nn.Conv2d(1, 16, 3, padding=1, padding_mode="reflect"))
    assert not fits(x.expand(2, 3, 50, 200), torch.nn.Conv2d(1, 16, 3, padding=1))  # conv2d must refuse it
    # A net asked for the image's gradient (saliency) gets it, through PyTorch's ops.
    net = ReportCNN(num_classes=19).eval()
    image = x.clone().requires_grad_()
    net(image).sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_second_derivative_is_refused_not_wrong():
    conv = torch.nn.Conv2d(1, 4, 3, padding=1)
    (grad,) = torch.autograd.grad(conv_pool(torch.rand(1, 1, 4, 4), conv).sum(), conv.weight, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        grad.sum().backward()


@pytest.mark.slow  # a fresh process: ~3 s of imports
def test_the_kernel_leaves_torchs_thread_count_alone():
    # In a fresh process: numba's thread pool starts on the first call, and used to set the OpenMP
    # runtime it shares with torch to all cores (4 threads on 2 cores in each DDP-CPU process).
    code = (
        "import torch; torch.set_num_threads(1)\n"
        "from captcha_lab.models.report_cnn import ReportCNN\n"
        "ReportCNN(19)(torch.rand(2, 1, 50, 200)).sum().backward()\n"
        "print(torch.get_num_threads())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1"]
