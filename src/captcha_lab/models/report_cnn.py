"""The report's net: a conv16/32/32+BN trunk and one dense head per character position."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from captcha_lab.errors import check_range
from captcha_lab.models.activations import MONOTONIC, make_activation
from captcha_lab.models.base import CaptchaNet, check_image
from captcha_lab.models.decoding import PerPosition
from captcha_lab.models.kernels import conv_pool, fits

HEAD_ACTIVATIONS = ("softmax", "sigmoid")


def _keras_init(module: nn.Module) -> None:
    # Keras defaults (glorot_uniform weights, zero biases), so the report's runs are comparable.
    if isinstance(module, nn.Conv2d):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


def _glorot(tensor: torch.Tensor, fan_in: int, fan_out: int) -> None:
    bound = math.sqrt(6 / (fan_in + fan_out))
    nn.init.uniform_(tensor, -bound, bound)


class Heads(nn.Module):
    """`length` independent dense -> activation -> dropout -> dense heads, run as one matmul and
    one batched matmul: the same function as separate nn.Linear heads, in two kernel calls
    instead of 2 * length."""

    def __init__(self, features: int, hidden: int, num_classes: int, length: int, activation: str, dropout: float):
        super().__init__()
        self.length, self.hidden_size = length, hidden
        self.hidden = nn.Linear(features, length * hidden)  # every head's first layer, side by side
        self.act, self.dropout = make_activation(activation), nn.Dropout(dropout)
        self.weight = nn.Parameter(torch.empty(length, hidden, num_classes))
        self.bias = nn.Parameter(torch.zeros(length, num_classes))
        # Keras's glorot_uniform from each head's own fan-in and fan-out.
        _glorot(self.hidden.weight, features, hidden)
        nn.init.zeros_(self.hidden.bias)
        _glorot(self.weight, hidden, num_classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.act(self.hidden(z))).view(-1, self.length, self.hidden_size)  # (B, L, H)
        out = torch.baddbmm(self.bias.unsqueeze(1), h.transpose(0, 1), self.weight)  # (L, B, C)
        return out.transpose(0, 1)  # (B, L, C)


def _report_trunk(activation: str, in_channels: int) -> nn.Sequential:
    """conv16-pool, conv32-pool, conv32-BN-pool: (B, C, H, W) -> (B, 32, H/8, W/8), rounded up."""

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        conv, act = nn.Conv2d(c_in, c_out, 3, padding=1), make_activation(activation)
        pool = nn.MaxPool2d(2, ceil_mode=True)  # Keras MaxPooling2D(padding='same')
        # max(f(x)) == f(max(x)) for a non-decreasing f, so pooling first gives the same
        # outputs and gradients with the activation on 4x fewer values. GELU is not monotonic:
        # it keeps the report's order.
        return [conv, pool, act] if activation in MONOTONIC else [conv, act, pool]

    return nn.Sequential(
        *block(in_channels, 16),
        *block(16, 32),
        nn.Conv2d(32, 32, 3, padding=1),
        make_activation(activation),
        # Keras BatchNormalization defaults: momentum 0.99 (= torch 0.01), epsilon 1e-3.
        nn.BatchNorm2d(32, eps=1e-3, momentum=0.01),
        nn.MaxPool2d(2, ceil_mode=True),
    )


def _check_arguments(head_activation, fused, hidden, dropout, image_size, in_channels) -> None:
    """A ValueError naming the bad argument, before any layer is built."""
    if head_activation not in HEAD_ACTIVATIONS:
        raise ValueError(f"head_activation must be one of {HEAD_ACTIVATIONS}, got {head_activation!r}")
    if not isinstance(fused, bool):
        raise ValueError(f"fused must be true or false, got {fused!r}")
    check_range("hidden", hidden, 1, integer=True)
    check_range("dropout", dropout, 0, 1)
    check_image(image_size, in_channels)


class ReportCNN(PerPosition, CaptchaNet):
    """The report's net: conv16-pool, conv32-pool, conv32-BN-pool, flatten, one dense head per
    character. 'same' convs and ceil-mode pooling give 50x200 -> 25x100 -> 13x50 -> 7x25.

    `fused`: on the CPU, run the first conv, its pool and (for ReLU) its activation as one kernel
    (models.kernels): the same function without materialising the conv's full-size output. Not
    part of `spec`: it changes how the net runs, not what it computes."""

    def __init__(
        self,
        num_classes: int,
        length: int = 5,
        activation: str = "relu",
        dropout: float = 0.5,
        hidden: int = 64,
        head_activation: str = "softmax",
        image_size: tuple[int, int] = (50, 200),
        in_channels: int = 1,
        fused: bool = True,
        min_length: int | None = None,  # train.py passes every net the shortest label; this one reads `length`
    ):
        super().__init__()
        _check_arguments(head_activation, fused, hidden, dropout, image_size, in_channels)
        self.spec = dict(
            kind="report_cnn", num_classes=num_classes, length=length, activation=activation, dropout=dropout,
            hidden=hidden, head_activation=head_activation, image_size=list(image_size), in_channels=in_channels,
        )  # fmt: skip
        self.head_activation = head_activation
        self.fuse_relu = activation == "relu"
        self.use_kernels(fused)

        self.trunk = _report_trunk(activation, in_channels)
        h, w = image_size
        for _ in range(3):
            h, w = -(-h // 2), -(-w // 2)
        features = 32 * h * w  # 32 * 7 * 25 = 5600 for 50x200
        self.heads = Heads(features, hidden, num_classes, length, activation, dropout)
        self.apply(_keras_init)
        # oneDNN (CPU) and cuDNN run these convs and pools fastest on NHWC tensors.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.features(x).flatten(1))  # (B, 5600) -> (B, L, C) logits

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, 32, H/8, W/8) trunk features (7x25 for 50x200)."""
        conv = self.trunk[0]
        if not (self.fused and fits(x, conv)):
            return self.trunk(x)
        z = conv_pool(x, conv, relu=self.fuse_relu)  # trunk[0:2], or [0:3] with ReLU
        for layer in self.trunk[3 if self.fuse_relu else 2 :]:
            z = layer(z)
        return z

    def use_kernels(self, enabled: bool) -> None:
        # The kernel pools before the activation, so it needs the monotonic (pool-first) order.
        self.fused = enabled and self.spec["activation"] in MONOTONIC

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, L, C) log-probabilities under the chosen head activation."""
        if self.head_activation == "softmax":
            return F.log_softmax(logits, dim=-1)
        # Keras sigmoid outputs + categorical_crossentropy: p = sigmoid(z) / sum(sigmoid(z)),
        # computed in log space so it cannot overflow.
        log_sig = F.logsigmoid(logits)
        return log_sig - torch.logsumexp(log_sig, dim=-1, keepdim=True)
