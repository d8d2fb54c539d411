"""The report net's first block (3x3 conv from 1 channel, 2x2 max-pool with ceil mode, optionally
ReLU) as one CPU kernel, forward and backward.

Why: eager PyTorch writes the conv's full-size (B, 16, 50, 200) output, pools it, zero-fills it
again as a gradient and reads it back every step, and on a small CPU that memory traffic, not
arithmetic, dominates the step (docs/benchmarks.md profiles it). Here each pooling
window's four conv values live only in registers: the kernel writes the pooled (B, 16, 25, 100)
output and one byte per output (which of the four won) and the backward reads those back.

Same function as `max_pool2d(conv2d(x, w, b, padding=1), 2, ceil_mode=True)` (then `relu`): the
same window maximum is picked (of equal ones the first in row-major order; NaN over numbers), so
the gradients reach the same conv outputs; sums are in another order, so values agree to float32
rounding (tested). The loops (models.kernel_loops) are compiled by numba on first use and
cached on disk (`cache=True`); numba is imported only when the kernel first runs."""

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def _split_columns(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # (B, 1, H, W) -> two (B, 2Hp+2, Wp+1): 'same' padding of 1, plus zeros up to whole windows.
    _, _, h, w = x.shape
    hp, wp = -(-h // 2), -(-w // 2)
    padded = F.pad(x[:, 0], (1, 2 * wp + 1 - w, 1, 2 * hp + 1 - h))  # (B, 2Hp+2, 2Wp+2)
    return padded[..., 0::2].contiguous(), padded[..., 1::2].contiguous()


class ConvPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, relu: bool) -> torch.Tensor:
        n, _, h, w = x.shape
        c = weight.shape[0]
        xe, xo = _split_columns(x.detach())
        out = torch.empty(n, -(-h // 2), -(-w // 2), c)  # (B, Hp, Wp, C)
        arg = torch.empty(n, out.shape[1], c, out.shape[2], dtype=torch.uint8)  # (B, Hp, C, Wp)
        loops = _loops()
        loops.match_torch_threads()
        w9, b = weight.detach().reshape(c, 9).contiguous(), bias.detach().contiguous()
        loops.forward(xe.numpy(), xo.numpy(), w9.numpy(), b.numpy(), h, w, relu, out.numpy(), arg.numpy())
        ctx.save_for_backward(xe, xo, arg)
        ctx.weight_layout = weight.shape, weight.stride()
        return out.permute(0, 3, 1, 2)  # (B, C, Hp, Wp) in channels_last memory, as the next conv wants

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        xe, xo, arg = ctx.saved_tensors
        n, _, c, _ = arg.shape
        grad = grad.permute(0, 2, 3, 1).contiguous()  # (B, Hp, Wp, C); no copy when channels_last
        dw, db = torch.zeros(n, c, 9), torch.zeros(n, c)
        loops = _loops()
        loops.match_torch_threads()
        loops.backward(xe.numpy(), xo.numpy(), grad.numpy(), arg.numpy(), dw.numpy(), db.numpy())
        # In the weight's own memory layout: DDP's gradient buckets expect it.
        grad_weight = torch.empty_strided(*ctx.weight_layout).copy_(dw.sum(0).view(c, 1, 3, 3))
        return None, grad_weight, db.sum(0), None


def _loops():
    # Here, not at the top: processes that never run the kernel (predict.py on a few images,
    # GPU runs) skip numba's import and start-up.
    from captcha_lab.models import kernel_loops

    return kernel_loops


def fits(x: torch.Tensor, conv: torch.nn.Conv2d) -> bool:
    """Whether `conv` then a 2x2 pool on `x` can run as ConvPool: float32 on the CPU, one input
    channel, a 3x3 zero-padded 'same' conv with bias, and no gradient wanted for the image itself."""
    return (
        x.device.type == "cpu"
        and x.dtype == conv.weight.dtype == torch.float32
        and not x.requires_grad
        and x.dim() == 4
        and x.shape[1] == conv.in_channels == 1
        and conv.padding_mode == "zeros"
        and conv.kernel_size == (3, 3)
        and conv.padding == (1, 1)
        and conv.stride == conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.bias is not None
    )


def conv_pool(x: torch.Tensor, conv: torch.nn.Conv2d, relu: bool = False) -> torch.Tensor:
    """(B, 1, H, W) -> (B, C, ceil(H/2), ceil(W/2)): max_pool2d(conv(x), 2, ceil_mode=True), then
    ReLU if `relu`. Check `fits` first."""
    return ConvPool.apply(x, conv.weight, conv.bias, relu)
