"""Reading captchas on ONNX Runtime from a checkpoint's exported net (inference.export): the same
reads as torch_backend.Predictor, without importing PyTorch, whose import would be most of a
short job's start-up."""

from pathlib import Path

import numpy as np
import onnxruntime as ort

from captcha_lab.errors import CaptchaLabError, first_line
from captcha_lab.inference.onnx_format import INPUTS, META_KEYS, OUTPUTS, OUTPUTS_BEFORE_LOG_PROBS, sha256
from captcha_lab.inference.reader import BATCH_SIZE, Reader

DECODINGS = ("ctc", "per_position")  # models.decoding's families
ERROR_LOGS_ONLY = 3  # ORT's severity levels: 0 verbose .. 4 fatal


class OnnxError(CaptchaLabError):
    pass


class OnnxPredictor(Reader):
    def __init__(self, session: ort.InferenceSession, batch_size: int = BATCH_SIZE):
        meta = session.get_modelmeta().custom_metadata_map
        # The graph's input is (batch, C, H, W): the size and channels the net was trained on.
        channels, height, width = session.get_inputs()[0].shape[1:]
        outputs = [o.name for o in session.get_outputs()]  # an earlier export has no log_probs
        min_length = int(meta["min_length"]) if "min_length" in meta and outputs == OUTPUTS else None
        if min_length is not None and not 0 <= min_length <= int(meta["length"]):
            raise ValueError(f"min_length {min_length} is outside 0..length {meta['length']}")
        super().__init__(
            meta["symbols"], int(meta["length"]), meta["decoding"], (height, width), channels, batch_size, min_length
        )
        self.session = session
        self.checkpoint_sha256 = meta["checkpoint_sha256"]

    @classmethod
    def from_file(
        cls, path: str | Path, batch_size: int = BATCH_SIZE, checkpoint: str | Path | None = None, threads: int = 0
    ):
        """`checkpoint`: refuse an export of any other checkpoint (say, a best.ckpt that a resumed
        run has replaced since). `threads`: per batch (0: ONNX Runtime's default, one per core)."""
        options = ort.SessionOptions()
        options.log_severity_level = ERROR_LOGS_ONLY
        if threads:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own classes (InvalidProtobuf, Fail, NoSuchFile...)
            raise OnnxError(f"{path}: not a readable ONNX model ({first_line(e)})") from None
        meta = session.get_modelmeta().custom_metadata_map
        missing = set(META_KEYS) - set(meta)
        if missing:
            raise OnnxError(f"{path}: not a captcha-lab export (no {', '.join(sorted(missing))} in it)")
        graph = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
        if graph not in ((INPUTS, OUTPUTS), (INPUTS, OUTPUTS_BEFORE_LOG_PROBS)) or meta["decoding"] not in DECODINGS:
            raise OnnxError(
                f"{path}: not a graph captcha-lab exports (inputs, outputs {graph}; decoding {meta['decoding']!r})"
            )
        try:
            predictor = cls(session, batch_size)
            same = checkpoint is None or predictor.checkpoint_sha256 == sha256(checkpoint)
        except (ValueError, OSError) as e:  # a length that is no number, empty symbols; an unreadable checkpoint
            raise OnnxError(f"{path}: {first_line(e)}") from None
        if not same:
            raise OnnxError(
                f"{path} is not the export of {checkpoint} as it is now (another checkpoint's, or that one "
                f"has changed since); export it again: python -m captcha_lab.cli.export {checkpoint}"
            )
        return predictor

    def frame_scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if self.read_lengths is None:
            best, index = self.session.run(OUTPUTS_BEFORE_LOG_PROBS, {INPUTS[0]: x})  # (B, T) each
            return best, index, None
        best, index, log_probs = self.session.run(OUTPUTS, {INPUTS[0]: x})
        return best, index, log_probs
