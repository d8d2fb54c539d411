"""What every net provides beyond nn.Module: the plain arguments it was built with (`spec`, so a
checkpoint rebuilds it without pickled objects) and a switch for hand-written CPU kernels."""

from torch import nn

# Spec keys that change how a net's outputs are read, not its weights: a checkpoint without them
# (from before they existed) or with other values still resumes into or initialises this net.
READING_KEYS = frozenset({"min_length"})


def weights_spec(spec: dict) -> dict:
    """`spec` without READING_KEYS: what two nets share when one's weights fit the other."""
    return {k: v for k, v in spec.items() if k not in READING_KEYS}


class CaptchaNet(nn.Module):
    """Subclasses also inherit a decoding family (models.decoding) and set `self.spec`, a dict of
    plain values with `kind` (the name of its module, models.registry) and `num_classes`, `length`,
    `image_size` (H, W) and `in_channels` (1 grayscale, 3 RGB), which the system, the exporter
    and the readers read."""

    spec: dict

    def use_kernels(self, enabled: bool) -> None:
        """Run hand-written CPU kernels (the same function) or PyTorch's own ops. Off for an ONNX
        export, which cannot trace them, and for short jobs, which cannot repay their start-up."""


def check_image(image_size, channels: int) -> None:
    """A ValueError naming the bad argument: what readers prepare images to (data.images)."""
    if len(image_size) != 2 or not all(isinstance(n, int) and n >= 8 for n in image_size):
        raise ValueError(f"image_size must be (height, width), each at least 8 pixels, got {list(image_size)}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
