"""What a `POST /predict` carries, read within the server's limits: the images' encoded bytes, from
a multipart upload (one file part per image) or a JSON body of base64 strings, then their pixels
as the net reads them. Anything else is a RequestError: a 4xx status and one line that names the
problem, which the app sends back as `{"detail": ...}`."""

import base64
import binascii
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

from captcha_lab.data.images import ImageError, header_size
from captcha_lab.errors import CaptchaLabError, first_line
from captcha_lab.inference.reader import Reader

JSON, MULTIPART = "application/json", "multipart/form-data"
BAD_REQUEST, TOO_LARGE, UNSUPPORTED_MEDIA_TYPE = 400, 413, 415


class RequestError(CaptchaLabError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """Per request. `max_pixels` is read from an image's header, before it is decoded."""

    max_body_bytes: int = 8 * 2**20
    max_images: int = 64
    max_pixels: int = 1_000_000


class JsonImages(BaseModel):
    """The JSON form of a request; base64 may be wrapped in lines or be a data URL
    (`data:image/png;base64,...`)."""

    model_config = ConfigDict(extra="forbid")
    images: list[str] | None = Field(None, description="base64-encoded image files", examples=[["iVBORw0KGgo..."]])
    image: str | None = Field(None, description="one base64-encoded image file (instead of `images`)")

    @model_validator(mode="after")
    def one_of_the_two(self):
        if (self.images is None) == (self.image is None):
            raise ValueError('give "images" (a list of base64 strings) or "image" (one), not both or neither')
        return self


async def read_images(request: Request, limits: Limits) -> list[bytes]:
    """The request's images, encoded as they were sent, in order (at least one)."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind not in (JSON, MULTIPART):
        raise RequestError(
            UNSUPPORTED_MEDIA_TYPE,
            f"content type {kind or '(none)'} is not accepted: send {MULTIPART} (image files) "
            f'or {JSON} ({{"images": [base64, ...]}})',
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_body_bytes:  # refused before it is read
        raise RequestError(TOO_LARGE, f"a body of {declared} bytes is more than the limit of {limits.max_body_bytes}")
    # Chunked bodies declare no length: counted as they arrive.
    request = Request(request.scope, bounded(request.receive, limits.max_body_bytes))
    try:
        blobs = await (from_json if kind == JSON else from_form)(request, limits.max_images)
    except ClientDisconnect:  # nobody reads this answer; it only keeps the log free of tracebacks
        raise RequestError(BAD_REQUEST, "the body ended before its declared length") from None
    if not blobs:
        # A multipart body cut short before a part's end parses as one without that part.
        cut = "" if kind == JSON else ": no complete file part (is the body cut short?)"
        raise RequestError(BAD_REQUEST, f"no images in the request{cut}")
    return blobs


def bounded(receive: Callable[[], Awaitable[dict]], max_bytes: int) -> Callable[[], Awaitable[dict]]:
    """An ASGI `receive` that stops reading a body once it exceeds `max_bytes`."""
    seen = 0

    async def receive_within() -> dict:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > max_bytes:
            raise RequestError(TOO_LARGE, f"the body is more than the limit of {max_bytes} bytes")
        return message

    return receive_within


async def from_json(request: Request, max_images: int) -> list[bytes]:
    try:
        body = JsonImages.model_validate_json(await request.body())
    except ValidationError as e:
        error = e.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        raise RequestError(BAD_REQUEST, f"JSON {where}: {error['msg']}") from None
    texts = body.images if body.images is not None else [body.image]
    if len(texts) > max_images:
        raise RequestError(TOO_LARGE, f"{len(texts)} images: more than the limit of {max_images} images per request")
    return [from_base64(text, i) for i, text in enumerate(texts)]


def from_base64(text: str, index: int) -> bytes:
    if text.startswith("data:"):
        _, comma, text = text.partition(",")
        if not comma:  # else read as no base64 at all, and answered as an empty file
            raise RequestError(
                BAD_REQUEST, f"image {index}: a data: URI has no comma before its base64 (data:image/png;base64,...)"
            )
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as e:  # ValueError: characters outside ASCII
        raise RequestError(BAD_REQUEST, f"image {index}: not valid base64 ({first_line(e)})") from None


async def from_form(request: Request, max_images: int) -> list[bytes]:
    """Every file part, in order, whatever its field name (`-F image=@a.png -F image=@b.png`)."""
    try:
        form = await request.form(max_files=max_images, max_fields=max_images)
    except HTTPException as e:  # Starlette's, for a malformed or over-limit form
        if "too many files" in str(e.detail).lower():
            raise RequestError(TOO_LARGE, f"more than the limit of {max_images} images per request") from None
        raise RequestError(BAD_REQUEST, f"multipart body: {e.detail}") from None
    try:
        blobs = []
        for name, value in form.multi_items():
            if not isinstance(value, UploadFile):
                raise RequestError(
                    BAD_REQUEST, f"form field {name!r} is not a file: send images as files (curl -F image=@captcha.png)"
                )
            blobs.append(await value.read())
        return blobs
    finally:
        await form.close()


def check_sizes(blobs: list[bytes], max_pixels: int) -> int:
    """The images' pixels in all, from their headers alone; RequestError for one over `max_pixels`."""
    total = 0
    for index, blob in enumerate(blobs):
        try:
            size = header_size(io.BytesIO(blob))  # (H, W); None: unreadable, which decode_all names
        except ImageError:  # over PIL's decompression-bomb limit, far over any max_pixels
            raise RequestError(TOO_LARGE, f"image {index}: more pixels than the limit of {max_pixels}") from None
        if size is not None and size[0] * size[1] > max_pixels:
            raise RequestError(
                TOO_LARGE, f"image {index}: {size[1]}x{size[0]} pixels is more than the limit of {max_pixels}"
            )
        total += 0 if size is None else size[0] * size[1]
    return total


def decode_all(reader: Reader, blobs: list[bytes]) -> list[np.ndarray]:
    """Encoded images -> uint8 pixels as the net reads them (Reader.prepare)."""
    pixels = []
    for index, blob in enumerate(blobs):
        try:
            pixels.append(reader.prepare(blob))
        except ImageError as e:
            raise RequestError(BAD_REQUEST, f"image {index}: {e}") from None
    return pixels
