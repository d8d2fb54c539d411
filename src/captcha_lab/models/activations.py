"""The activations a config may name (`activation=`), built by name."""

from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
}
# Non-decreasing ones: max-pooling commutes with them (report_cnn pools first).
MONOTONIC = {"relu", "sigmoid", "tanh", "elu", "leaky_relu"}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()
