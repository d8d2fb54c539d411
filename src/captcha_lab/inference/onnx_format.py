"""What an ONNX export and its reader agree on, without importing either's runtime: where the
export lives, its metadata keys, and the checkpoint hash that ties it to its checkpoint."""

import hashlib
from pathlib import Path

# Metadata the export writes and the reader requires, all strings; a CTC net's export also
# writes "min_length", the shortest label (absent from exports before reads were held to it).
META_KEYS = ("checkpoint_sha256", "symbols", "length", "decoding")
INPUTS, OUTPUTS = ["images"], ["best", "index", "log_probs"]
OUTPUTS_BEFORE_LOG_PROBS = OUTPUTS[:2]  # earlier exports: read as before, greedily


def onnx_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's ONNX export lives: beside it (checkpoints/best.ckpt -> best.onnx)."""
    return Path(checkpoint).with_suffix(".onnx")


def missing_export(checkpoint: str | Path) -> str:
    """What predict.py and serve.py say where a checkpoint has no export: where, and the remedy."""
    return f"no ONNX export at {onnx_path(checkpoint)}; export it: python -m captcha_lab.cli.export {checkpoint}"


def sha256(path: str | Path) -> str:
    """What an export records of its checkpoint, so that a replaced checkpoint is noticed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
