"""captcha-lab: text-CAPTCHA recognition with PyTorch Lightning + Hydra."""

__version__ = "0.1.0"
