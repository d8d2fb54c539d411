"""Running the API on uvicorn: the checkpoint's export is loaded and checked before the server
binds its port (a stale or missing export stops it with one line), and SIGTERM or Ctrl-C stops
it gracefully: uvicorn stops taking connections, answers the requests in flight (the batcher
runs what they queued) and `serve` returns, so that the process exits 0.

With `workers` > 1, uvicorn starts that many processes, each with its own model and batcher,
sharing the port; they build the app from the settings passed in an environment variable."""

import contextlib
import dataclasses
import json
import logging
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType

import uvicorn
from fastapi import FastAPI

from captcha_lab.data.images import quiet_decoders
from captcha_lab.inference.onnx_backend import OnnxError, OnnxPredictor
from captcha_lab.inference.onnx_format import missing_export, onnx_path
from captcha_lab.serving.app import create_app
from captcha_lab.serving.payload import Limits

SETTINGS_VARIABLE = "CAPTCHA_LAB_SERVE"  # the workers' settings, as JSON


@dataclass(frozen=True)
class Settings:
    """What each worker builds its app from."""

    ckpt_path: str
    max_batch: int = 32
    max_wait_ms: float = 0.0
    limits: Limits = field(default_factory=Limits)
    threads: int = 1  # ONNX Runtime's per batch (load_reader)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Settings":
        values = json.loads(text)
        return cls(**{**values, "limits": Limits(**values["limits"])})


def load_reader(ckpt_path: str, batch_size: int, threads: int = 0) -> OnnxPredictor:
    """The checkpoint's current ONNX export (OnnxError, one line, if there is none), run with
    `threads` threads per batch (0: ONNX Runtime's default, one per core)."""
    exported = onnx_path(ckpt_path)
    if not exported.is_file():
        raise OnnxError(missing_export(ckpt_path))
    # Every check predict.py makes.
    return OnnxPredictor.from_file(exported, batch_size, checkpoint=ckpt_path, threads=threads)


def build_app(settings: Settings) -> FastAPI:
    quiet_decoders()  # a bad upload is answered by name; OpenCV's own warning would only repeat it
    # A malformed multipart body too (400 "multipart body: ..."): its parser's warnings repeat it.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    reader = load_reader(settings.ckpt_path, settings.max_batch, settings.threads)
    return create_app(reader, settings.ckpt_path, settings.limits, settings.max_batch, settings.max_wait_ms / 1000)


def app_from_environment() -> FastAPI:
    """uvicorn's factory in each worker process (workers > 1)."""
    return build_app(Settings.from_json(os.environ[SETTINGS_VARIABLE]))


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    graceful_timeout_s: float | None = 30,
    access_log: bool = False,
) -> None:
    """Serve until SIGTERM or Ctrl-C; `port` 0 takes a free one (uvicorn's log names it).
    `graceful_timeout_s`: how long requests in flight may take to finish once stopping."""
    app = build_app(settings)  # here too with workers > 1: a bad export stops it before any worker starts
    options = dict(host=host, port=port, timeout_graceful_shutdown=graceful_timeout_s, access_log=access_log)
    if workers == 1:
        server = uvicorn.Server(uvicorn.Config(app, **options))
        with stop_signals_handled_by(server.handle_exit):
            server.run()
    else:  # uvicorn's supervisor handles the signals, stopping each worker as above
        del app  # checked; each worker builds its own, and this one would sit idle in memory
        os.environ[SETTINGS_VARIABLE] = settings.to_json()
        # Here a signal before the supervisor takes them is ignored (the handler does nothing).
        with stop_signals_handled_by(lambda *_: None):
            uvicorn.run(f"{__name__}:{app_from_environment.__name__}", factory=True, workers=workers, **options)


@contextlib.contextmanager
def stop_signals_handled_by(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """uvicorn takes SIGTERM and SIGINT while it serves, and afterwards raises the signal again
    for the handler that was there before it: the default one would end the process by the
    signal (status 143, or a KeyboardInterrupt) after a clean stop. With `handler` there instead,
    the one after is harmless, and a signal before uvicorn takes them does what `handler` does."""
    stops = (signal.SIGTERM, signal.SIGINT)
    before = {sig: signal.signal(sig, handler) for sig in stops}
    try:
        yield
    finally:
        for sig, previous in before.items():
            signal.signal(sig, previous)
