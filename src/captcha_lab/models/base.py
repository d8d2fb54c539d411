"""What every net provides beyond nn.Module: the plain arguments it was built with (`spec`, so a
checkpoint rebuilds it without pickled objects) and a switch for hand-written CPU kernels."""

from torch import nn


class CaptchaNet(nn.Module):
    """Subclasses also inherit a decoding family (models.decoding) and set `self.spec`, a dict of
    plain values with `kind` (its name in models.registry) and `num_classes`, `length` and
    `image_size`, which the system, the exporter and the readers read."""

    spec: dict

    def use_kernels(self, enabled: bool) -> None:
        """Run hand-written CPU kernels (the same function) or PyTorch's own ops. Off for an ONNX
        export, which cannot trace them, and for short jobs, which cannot repay their start-up."""
