"""Plain nn.Modules. Each net maps (B, 1, 50, 200) images in [0, 1] to per-position logits and
records the plain arguments it was built with (`spec`), so a checkpoint can rebuild it without
pickled objects."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from captcha_lab.charset import PAD
from captcha_lab.ctc import greedy_decode
from captcha_lab.errors import check_range
from captcha_lab.kernels import conv_pool, fits

ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
}
MONOTONIC = {"relu", "sigmoid", "tanh", "elu", "leaky_relu"}
HEAD_ACTIVATIONS = ("softmax", "sigmoid")


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


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
    one batched matmul: the same function as separate nn.Linear heads, about twice as fast."""

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


def _report_trunk(activation: str) -> nn.Sequential:
    """conv16-pool, conv32-pool, conv32-BN-pool: (B, 1, H, W) -> (B, 32, H/8, W/8), rounded up."""

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        conv, act = nn.Conv2d(c_in, c_out, 3, padding=1), make_activation(activation)
        pool = nn.MaxPool2d(2, ceil_mode=True)  # Keras MaxPooling2D(padding='same')
        # max(f(x)) == f(max(x)) for a non-decreasing f, so pooling first gives the same
        # outputs and gradients with the activation on 4x fewer values (a third of the step
        # time on CPU). GELU is not monotonic: it keeps the report's order.
        return [conv, pool, act] if activation in MONOTONIC else [conv, act, pool]

    return nn.Sequential(
        *block(1, 16),
        *block(16, 32),
        nn.Conv2d(32, 32, 3, padding=1),
        make_activation(activation),
        # Keras BatchNormalization defaults: momentum 0.99 (= torch 0.01), epsilon 1e-3.
        nn.BatchNorm2d(32, eps=1e-3, momentum=0.01),
        nn.MaxPool2d(2, ceil_mode=True),
    )


class ReportCNN(nn.Module):
    """The report's net: conv16-pool, conv32-pool, conv32-BN-pool, flatten, one dense head per
    character. 'same' convs and ceil-mode pooling give 50x200 -> 25x100 -> 13x50 -> 7x25.

    `fused`: on the CPU, run the first conv, its pool and (for ReLU) its activation as one kernel
    (`captcha_lab.kernels`): the same function without the 20 MB conv output. Not part of `spec`:
    it changes how the net runs, not what it computes."""

    def __init__(
        self,
        num_classes: int,
        length: int = 5,
        activation: str = "relu",
        dropout: float = 0.5,
        hidden: int = 64,
        head_activation: str = "softmax",
        image_size: tuple[int, int] = (50, 200),
        fused: bool = True,
    ):
        super().__init__()
        if head_activation not in HEAD_ACTIVATIONS:
            raise ValueError(f"head_activation must be one of {HEAD_ACTIVATIONS}, got {head_activation!r}")
        if not isinstance(fused, bool):
            raise ValueError(f"fused must be true or false, got {fused!r}")
        check_range("hidden", hidden, 1, integer=True)
        check_range("dropout", dropout, 0, 1)
        self.spec = dict(
            kind="report_cnn",
            num_classes=num_classes,
            length=length,
            activation=activation,
            dropout=dropout,
            hidden=hidden,
            head_activation=head_activation,
            image_size=list(image_size),
        )
        self.head_activation = head_activation
        # The kernel pools before the activation, so it needs the monotonic (pool-first) order.
        self.fused, self.fuse_relu = fused and activation in MONOTONIC, activation == "relu"

        self.trunk = _report_trunk(activation)
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
        """(B, 1, H, W) images -> (B, 32, 7, 25) trunk features."""
        conv = self.trunk[0]
        if not (self.fused and fits(x, conv)):
            return self.trunk(x)
        z = conv_pool(x, conv, relu=self.fuse_relu)  # trunk[0:2], or [0:3] with ReLU
        for layer in self.trunk[3 if self.fuse_relu else 2 :]:
            z = layer(z)
        return z

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, L, C) log-probabilities under the chosen head activation."""
        if self.head_activation == "softmax":
            return F.log_softmax(logits, dim=-1)
        # Keras sigmoid outputs + categorical_crossentropy: p = sigmoid(z) / sum(sigmoid(z)),
        # computed in log space so it cannot overflow.
        log_sig = F.logsigmoid(logits)
        return log_sig - torch.logsumexp(log_sig, dim=-1, keepdim=True)

    def decode(self, logits: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, C) logits -> (B, width) symbol indices padded with PAD, and (B,) confidences
        (the product of the per-position maxima)."""
        best, index = self.log_probs(logits).max(-1)  # (B, L)
        return F.pad(index, (0, width - index.shape[1]), value=PAD), best.sum(-1).exp()


RNNS = {"lstm": nn.LSTM, "gru": nn.GRU, "none": None}


def _conv_block(c_in: int, c_out: int, stride: tuple[int, int], activation: str) -> nn.Sequential:
    # Strided convs instead of conv + max-pool: each conv runs at its output resolution, which is
    # what makes a 50x200 trunk affordable on two CPU cores.
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        make_activation(activation),
    )


def _frame_block(c_in: int, c_out: int, kernel: int, activation: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm1d(c_out),
        make_activation(activation),
    )


def _bidirectional(kind: str, hidden: int, layers: int, dropout: float) -> nn.Module | None:
    """A bidirectional LSTM/GRU whose two directions together are `hidden` wide, or None."""
    if RNNS[kind] is None:
        return None
    between = dropout if layers > 1 else 0.0  # between stacked RNN layers
    return RNNS[kind](hidden, hidden // 2, num_layers=layers, bidirectional=True, batch_first=True, dropout=between)


class CRNN(nn.Module):
    """Conv trunk -> 1-D convs over the frames -> optional bidirectional LSTM/GRU -> per-frame
    logits for CTC.

    Every trunk block halves the height; the first `width_halvings` also halve the width, so with
    the defaults a 50x200 image becomes 25 frames, 8 px apart, enough for 4-6 characters with
    blanks between repeats. The `context` 1-D convs (kernel 3) widen each frame's view from 15 px
    to 63 px, a whole character: without them the recurrent net has to assemble characters
    itself and memorises the training set (val seq_acc ~0.85 in bench/ctc_probe.py's loop); with
    them even `rnn="none"` reads 98-99% of the same held-out fold (docs/accuracy.md).
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
    ):
        super().__init__()
        make_activation(activation)  # a ValueError naming the choices, before any layer is built
        if rnn not in RNNS:
            raise ValueError(f"rnn must be one of {sorted(RNNS)}, got {rnn!r}")
        check_range("hidden", hidden, 1, integer=True)
        check_range("dropout", dropout, 0, 1)
        check_range("rnn_layers", rnn_layers, 1, integer=True)
        check_range("context", context, 0, integer=True)
        check_range("width_halvings", width_halvings, 0, integer=True)
        if not channels:
            raise ValueError("channels must list at least one conv's width, got []")
        for c in channels:
            check_range("channels", c, 1, integer=True)
        if width_halvings > len(channels):  # only strided convs halve the width
            raise ValueError(f"width_halvings must be at most len(channels) = {len(channels)}, got {width_halvings}")
        if rnn != "none" and hidden % 2:
            raise ValueError(f"hidden must be even with an RNN (half per direction), got {hidden}")
        channels = [int(c) for c in channels]
        # `length` is the longest label: it sizes the per-position metrics, not the net.
        self.spec = dict(
            kind="crnn",
            num_classes=num_classes,
            length=length,
            channels=channels,
            width_halvings=width_halvings,
            hidden=hidden,
            context=context,
            rnn=rnn,
            rnn_layers=rnn_layers,
            dropout=dropout,
            activation=activation,  # of the conv blocks; a checkpoint from before it had ReLU
            image_size=list(image_size),
        )
        strides = [(2, 2) if i < width_halvings else (2, 1) for i in range(len(channels))]
        self.trunk = nn.Sequential(
            *(
                _conv_block(c_in, c_out, s, activation)
                for c_in, c_out, s in zip([1, *channels], channels, strides, strict=False)
            )
        )
        h = image_size[0]
        for _ in channels:
            h = -(-h // 2)  # a stride-2 conv with padding 1 rounds up
        self.project = _frame_block(channels[-1] * h, hidden, 1, activation)  # 96 * 7 = 672 features per frame
        self.context = nn.Sequential(*(_frame_block(hidden, hidden, 3, activation) for _ in range(context)))
        self.rnn = _bidirectional(rnn, hidden, rnn_layers, dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.project(self.trunk(x).flatten(1, 2))  # (B, c, h, T) -> (B, hidden, T)
        if len(self.context):
            z = z + self.context(z)  # residual: the projection's features pass straight through
        z = z.transpose(1, 2)  # (B, T, hidden)
        if self.rnn is not None:
            z = z + self.rnn(z)[0]  # both directions side by side: (B, T, hidden)
        return self.head(self.dropout(z))  # (B, T, C + 1) logits

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(logits, dim=-1)

    def decode(self, logits: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, C + 1) logits -> (B, width) greedy CTC reads padded with PAD, and (B,) confidences."""
        return greedy_decode(self.log_probs(logits), width)


NETS = {"report_cnn": ReportCNN, "crnn": CRNN}


def build_net(spec: dict) -> nn.Module:
    """Rebuild a net from its recorded `spec` (as stored in checkpoints)."""
    kwargs = dict(spec)
    kind = kwargs.pop("kind", None)
    if kind not in NETS:
        raise ValueError(f"unknown net kind {kind!r}; known: {sorted(NETS)}")
    return NETS[kind](**kwargs)
