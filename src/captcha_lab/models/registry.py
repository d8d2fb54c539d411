"""Net kinds by the name their `spec` records: a checkpoint's net is rebuilt from it. A new
model is one module, one conf/model/*.yaml and one line here."""

from captcha_lab.models.base import CaptchaNet
from captcha_lab.models.crnn import CRNN
from captcha_lab.models.report_cnn import ReportCNN

NETS: dict[str, type[CaptchaNet]] = {"report_cnn": ReportCNN, "crnn": CRNN}


def build_net(spec: dict) -> CaptchaNet:
    """Rebuild a net from its recorded `spec` (as stored in checkpoints)."""
    kwargs = dict(spec)
    kind = kwargs.pop("kind", None)
    if kind not in NETS:
        raise ValueError(f"unknown net kind {kind!r}; known: {sorted(NETS)}")
    return NETS[kind](**kwargs)
