"""Serving a checkpoint's ONNX export over HTTP (serve.py): request parsing and limits
(payload), batching of concurrent requests into one ONNX Runtime run (batcher), the FastAPI app
(app) and its uvicorn server (server). Without PyTorch and without Hydra: serve.py's command
line (cli.serve) turns its config into the plain arguments these take."""
