"""The HTTP API (FastAPI): `POST /predict` reads one or many captchas, `GET /health` describes the
model served, `/docs` and `/openapi.json` document both. Every error is JSON, `{"detail": "..."}`:
a 4xx naming the problem for a bad request (payload.RequestError), 503 while stopping."""

from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from captcha_lab.inference.onnx_backend import OnnxPredictor
from captcha_lab.inference.reader import Prediction
from captcha_lab.serving.batcher import Batcher, Stopped
from captcha_lab.serving.payload import (
    JSON,
    MULTIPART,
    JsonImages,
    Limits,
    RequestError,
    check_sizes,
    decode_all,
    read_images,
)


class Read(BaseModel):
    text: str
    confidence: float = Field(description="the net's probability of its read (inference.reader.Prediction)")
    char_confidences: list[float] = Field(description="each character's probability, one per character of text")


class Reads(BaseModel):
    results: list[Read] = Field(description="one per image, in the order sent")


class Health(BaseModel):
    status: str = "ok"
    model: str = Field(description="the checkpoint served (its ONNX export, beside it)")
    checkpoint_sha256: str
    alphabet: str
    length: int = Field(description="characters per captcha the net was trained on (the most, for CTC)")
    min_length: int = Field(description="the fewest characters a read has (0: an older CTC export, any)")
    decoding: str = Field(description="ctc or per_position")
    input_size: list[int] = Field(description="[height, width] every image is resized to")
    channels: int = Field(description="1: read as grayscale, 3: as RGB")
    version: str = Field(description="captcha-lab's")
    max_batch: int
    max_wait_ms: float
    limits: dict[str, int]
    batches: int = Field(
        0, description="batches formed since the start: requests read together (one larger than max_batch alone)"
    )
    images_read: int = Field(0, description="images in those batches")
    queued: int = Field(0, description="images waiting for the next batch")


class Error(BaseModel):
    detail: str


# Requests of at most this many pixels in all (the default limits allow 64 million) are decoded
# on the event loop: a captcha is ~10 thousand, and handing it to a thread would cost more.
INLINE_PIXELS = 500_000

# /predict reads its body itself (multipart or JSON), so FastAPI is told what it takes for the docs.
PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            MULTIPART: {
                "schema": {
                    "type": "object",
                    "properties": {"image": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                }
            },
            JSON: {"schema": JsonImages.model_json_schema()},
        },
    }
}
ERRORS = {
    400: {"model": Error, "description": "unreadable request or image"},
    413: {"model": Error, "description": "over a limit: body size, images per request, pixels per image"},
    415: {"model": Error, "description": "neither multipart/form-data nor application/json"},
    503: {"model": Error, "description": "the server is stopping"},
}


def as_json(p: Prediction) -> dict:
    chars = [float(c) for c in p.char_confidences]
    return {"text": p.text, "confidence": float(p.confidence), "char_confidences": chars}


def package_version() -> str:
    try:
        return version("captcha-lab")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def create_app(reader: OnnxPredictor, model: str, limits: Limits, max_batch: int, max_wait_s: float) -> FastAPI:
    """The API over `reader`, its batches of at most `max_batch` images (Batcher)."""
    batcher = Batcher(reader.predict_pixels, max_batch, max_wait_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()  # after uvicorn has answered every request in flight

    app = FastAPI(title="captcha-lab", version=package_version(), lifespan=lifespan, summary=__doc__.splitlines()[0])
    app.state.batcher = batcher
    health = describe(reader, model, limits, max_batch, max_wait_s)

    @app.post("/predict", response_model=Reads, responses=ERRORS, openapi_extra=PREDICT_BODY)
    async def predict(request: Request) -> JSONResponse:
        """Read captchas: image files as multipart/form-data (`curl -F image=@a.png`), or JSON
        `{"images": [base64, ...]}`. One result per image, in order."""
        blobs = await read_images(request, limits)
        if check_sizes(blobs, limits.max_pixels) <= INLINE_PIXELS:
            pixels = decode_all(reader, blobs)
        else:  # off the event loop, which would stop taking requests meanwhile
            pixels = await run_in_threadpool(decode_all, reader, blobs)
        predictions = await batcher.predict(pixels)
        # A response built here, not by FastAPI from Reads: its validation would add to every request.
        return JSONResponse({"results": [as_json(p) for p in predictions]})

    @app.get("/health", response_model=Health)
    async def get_health() -> Health:
        """The model served, the server's limits and how many batches it has run."""
        counts = {"batches": batcher.batches, "images_read": batcher.images, "queued": batcher.queued()}
        return health.model_copy(update=counts)

    add_error_handlers(app)
    return app


def describe(reader: OnnxPredictor, model: str, limits: Limits, max_batch: int, max_wait_s: float) -> Health:
    return Health(
        model=model,
        checkpoint_sha256=reader.checkpoint_sha256,
        alphabet=reader.charset.symbols,
        length=reader.length,
        min_length=reader.read_lengths[0] if reader.read_lengths else 0 if reader.ctc else reader.length,
        decoding="ctc" if reader.ctc else "per_position",
        input_size=list(reader.image_size),
        channels=reader.channels,
        version=package_version(),
        max_batch=max_batch,
        max_wait_ms=max_wait_s * 1000,
        limits=vars(limits),
    )


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def bad_request(request: Request, e: RequestError) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=e.status)

    @app.exception_handler(Stopped)
    async def stopping(request: Request, e: Stopped) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=503)

    @app.exception_handler(Exception)
    async def internal(request: Request, e: Exception) -> JSONResponse:
        # Not a client's mistake (every bad input is a RequestError): logged with its traceback
        # by Starlette, which re-raises it after this answer.
        return JSONResponse({"detail": f"internal error: {type(e).__name__}"}, status_code=500)
