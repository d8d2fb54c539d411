"""CRNN: strided conv trunk, 1-D convs over the frames, an optional bidirectional LSTM/GRU, and
per-frame logits for CTC."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from captcha_lab.errors import check_range
from captcha_lab.models.activations import make_activation
from captcha_lab.models.base import CaptchaNet, check_image
from captcha_lab.models.decoding import CTC

RNNS = {"lstm": nn.LSTM, "gru": nn.GRU, "none": None}


def _conv_block(c_in: int, c_out: int, stride: tuple[int, int], activation: str) -> nn.Sequential:
    # Strided convs instead of conv + max-pool: each conv runs at its output resolution, which is
    # what makes a 50x200 trunk affordable on two CPU cores.
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        make_activation(activation),
    )


class FrameConv(nn.Conv1d):
    """A Conv1d (same weights, same result) over frames held as (B, T, C), computed as one matmul
    of the frames side by side: oneDNN's conv on so short and narrow a sequence costs several
    times the BLAS matmul, backward most of all. (B, T, C_in) -> (B, T, C_out)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        k, pad = self.kernel_size[0], self.padding[0]
        if k == 1:
            return F.linear(z, self.weight[:, :, 0], self.bias)
        z = F.pad(z, (0, 0, pad, pad))  # zero frames at both ends: (B, T + 2 pad, C_in)
        frames = z.shape[1] - k + 1
        window = torch.cat([z[:, i : i + frames] for i in range(k)], 2)  # (B, T, k C_in): tap-major
        return F.linear(window, self.weight.transpose(1, 2).flatten(1), self.bias)  # weight (out, in, k)


class FrameNorm(nn.BatchNorm1d):
    """BatchNorm1d (same statistics, same state) of (B, T, C) frames."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return super().forward(z.flatten(0, 1)).view_as(z)  # over B x T, as BatchNorm1d on (B, C, T)


def _frame_block(c_in: int, c_out: int, kernel: int, activation: str) -> nn.Sequential:
    return nn.Sequential(
        FrameConv(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        FrameNorm(c_out),
        make_activation(activation),
    )


def _trunk(in_channels: int, channels: list[int], width_halvings: int, activation: str) -> nn.Sequential:
    strides = [(2, 2) if i < width_halvings else (2, 1) for i in range(len(channels))]
    blocks = zip([in_channels, *channels], channels, strides, strict=False)
    return nn.Sequential(*(_conv_block(c_in, c_out, s, activation) for c_in, c_out, s in blocks))


def _trunk_output(image_size: tuple[int, int], blocks: int, width_halvings: int) -> tuple[int, int]:
    """(height, frames) of the trunk's output: a stride-2 conv with padding 1 rounds up."""
    h, w = image_size
    for i in range(blocks):
        h, w = -(-h // 2), -(-w // 2) if i < width_halvings else w
    return h, w


def _bidirectional(kind: str, hidden: int, layers: int, dropout: float) -> nn.Module | None:
    """A bidirectional LSTM/GRU whose two directions together are `hidden` wide, or None."""
    if RNNS[kind] is None:
        return None
    between = dropout if layers > 1 else 0.0  # between stacked RNN layers
    return RNNS[kind](hidden, hidden // 2, num_layers=layers, bidirectional=True, batch_first=True, dropout=between)


def _check_arguments(channels, width_halvings, hidden, context, rnn, rnn_layers, dropout, activation) -> None:
    """A ValueError naming the bad argument, before any layer is built."""
    make_activation(activation)
    if rnn not in RNNS:
        raise ValueError(f"rnn must be one of {sorted(RNNS)}, got {rnn!r}")
    check_range("hidden", hidden, 1, integer=True)
    check_range("dropout", dropout, 0, 1)
    check_range("rnn_layers", rnn_layers, 1, integer=True)
    # More frame convs than ~16 see past any captcha's width and only cost time.
    check_range("context", context, 0, 16, integer=True, closed=True)
    check_range("width_halvings", width_halvings, 0, integer=True)
    if isinstance(channels, str) or not isinstance(channels, Sequence):  # a string would be read by letter
        raise ValueError(f"channels must be a list of conv widths, e.g. [16,32,64], got {channels!r}")
    if not channels:
        raise ValueError("channels must list at least one conv's width, got []")
    for c in channels:
        check_range("channels", c, 1, integer=True)
    if width_halvings > len(channels):  # only strided convs halve the width
        raise ValueError(f"width_halvings must be at most len(channels) = {len(channels)}, got {width_halvings}")
    if rnn != "none" and hidden % 2:
        raise ValueError(f"hidden must be even with an RNN (half per direction), got {hidden}")


class CRNN(CTC, CaptchaNet):
    """Conv trunk -> 1-D convs over the frames -> optional bidirectional LSTM/GRU -> per-frame
    logits for CTC.

    Every trunk block halves the height; the first `width_halvings` also halve the width, so with
    the defaults a 50x200 image becomes 25 frames, 8 px apart, enough for 4-6 characters with
    blanks between repeats. The `context` 1-D convs (kernel 3) widen each frame's view from 15 px
    to 63 px, a whole character: without them the recurrent net has to assemble characters
    itself and tends to memorise the training set (docs/accuracy.md).
    Output (B, T, C + 1): the last class is the CTC blank."""

    def __init__(
        self,
        num_classes: int,
        length: int = 5,
        channels: tuple[int, ...] = (32, 64, 96),
        width_halvings: int = 3,
        hidden: int = 128,
        context: int = 3,
        rnn: str = "lstm",
        rnn_layers: int = 1,
        dropout: float = 0.0,
        activation: str = "relu",
        image_size: tuple[int, int] = (50, 200),
        in_channels: int = 1,
        min_length: int | None = None,
    ):
        super().__init__()
        _check_arguments(channels, width_halvings, hidden, context, rnn, rnn_layers, dropout, activation)
        if min_length is not None:
            check_range("min_length", min_length, 0, length, integer=True, closed=True)
        check_image(image_size, in_channels)
        channels = [int(c) for c in channels]
        # `length` is the longest label: it sizes the per-position metrics, not the net; with
        # `min_length`, the shortest, reads are held between the two (decoding.CTC.read_lengths).
        self.spec = dict(
            kind="crnn", num_classes=num_classes, length=length, channels=channels,
            width_halvings=width_halvings, hidden=hidden, context=context, rnn=rnn, rnn_layers=rnn_layers,
            dropout=dropout, activation=activation,  # of the conv blocks
            image_size=list(image_size), in_channels=in_channels, min_length=min_length,
        )  # fmt: skip
        self.read_lengths = None if min_length is None else (min_length, length)
        h, self.frames = _trunk_output(image_size, len(channels), width_halvings)
        self.trunk = _trunk(in_channels, channels, width_halvings, activation)
        self.project = _frame_block(channels[-1] * h, hidden, 1, activation)  # 96 * 7 = 672 features per frame
        self.context = nn.Sequential(*(_frame_block(hidden, hidden, 3, activation) for _ in range(context)))
        self.rnn = _bidirectional(rnn, hidden, rnn_layers, dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes + 1)
        # oneDNN (CPU) and cuDNN run the trunk's convs, BatchNorms and ReLUs fastest on NHWC.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # no copy for one channel
        x = self.trunk(x)  # (B, c, h, T)
        z = self.project(x.permute(0, 3, 1, 2).flatten(2))  # (B, T, c h) -> (B, T, hidden)
        if len(self.context):
            z = z + self.context(z)  # residual: the projection's features pass straight through
        if self.rnn is not None:
            z = z + self.rnn(z)[0]  # both directions side by side: (B, T, hidden)
        return self.head(self.dropout(z))  # (B, T, C + 1) logits
