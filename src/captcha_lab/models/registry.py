"""Nets by kind. A net's `spec["kind"]` is the name of the module in captcha_lab.models that
defines it (report_cnn: models/report_cnn.py), so a checkpoint's net is rebuilt from its spec
alone, and a new model is one module and one conf/model/*.yaml, with no list to extend."""

import importlib
import re

from captcha_lab import models
from captcha_lab.models.base import CaptchaNet


def net_class(kind) -> type[CaptchaNet]:
    """The one CaptchaNet class that module captcha_lab.models.<kind> defines; a ValueError
    naming the kind where there is no such module, or it defines none or several."""
    # Only a module name: a checkpoint's spec may not import anything else.
    if not isinstance(kind, str) or not re.fullmatch(r"[a-z_][a-z0-9_]*", kind):
        raise ValueError(f"unknown net kind {kind!r}")
    name = f"{models.__name__}.{kind}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:  # the module exists but an import inside it failed
            raise
        raise ValueError(f"unknown net kind {kind!r}: no module models/{kind}.py") from None
    nets = [
        c
        for c in vars(module).values()
        if isinstance(c, type) and issubclass(c, CaptchaNet) and c is not CaptchaNet and c.__module__ == name
    ]
    if len(nets) != 1:
        raise ValueError(f"net kind {kind!r}: models/{kind}.py defines {len(nets)} CaptchaNet classes, not one")
    return nets[0]


def check_kind(net: CaptchaNet) -> None:
    """A ValueError unless `net`'s spec kind rebuilds its own class: checked before training, so
    that no run ends with checkpoints that nothing can read."""
    kind, module = net.spec.get("kind"), type(net).__module__.rpartition(".")[2]
    try:
        found = net_class(kind)
    except ValueError:
        found = None
    if found is not type(net):
        raise ValueError(
            f"{type(net).__name__}'s spec kind is {kind!r}: it must be the name of its module in"
            f" captcha_lab/models ({module!r}), which defines no other net, for checkpoints to rebuild it"
        )


def build_net(spec: dict) -> CaptchaNet:
    """Rebuild a net from its recorded `spec` (as stored in checkpoints)."""
    kwargs = dict(spec)
    return net_class(kwargs.pop("kind", None))(**kwargs)
