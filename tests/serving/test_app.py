"""The app in this process (on uvicorn in a thread, or called over ASGI), for what the served one
(small limits) cannot show."""

import asyncio
import contextlib
import io
import threading
import time

import httpx
import PIL.Image
import uvicorn

from captcha_lab.serving.app import INLINE_PIXELS, create_app
from captcha_lab.serving.payload import Limits


@contextlib.contextmanager
def serving(app):
    """`app` on a free loopback port until the block ends; its URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run)  # not the main thread: uvicorn leaves the signals alone
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_request_of_many_pixels_is_decoded_off_the_event_loop_and_read_alike(reader, images):
    big = io.BytesIO()
    PIL.Image.open(io.BytesIO(images[0])).resize((1000, 600)).save(big, "PNG")
    assert 1000 * 600 > INLINE_PIXELS
    with serving(create_app(reader, "tiny", Limits(), max_batch=8, max_wait_s=0.0)) as url:
        answer = httpx.post(f"{url}/predict", files=[("image", ("big.png", big.getvalue(), "image/png"))])
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"][0]["text"] == reader.predict([big.getvalue()])[0].text


def in_process(app, ask, stop_first: bool = False) -> httpx.Response:
    """`ask(client)` of `app` in this thread, inside the app's lifespan; `stop_first`: after the
    batcher's stop, as the lifespan's shutdown begins it."""

    async def main():
        async with app.router.lifespan_context(app):
            if stop_first:
                await app.state.batcher.stop()
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                return await ask(client)

    return asyncio.run(main())


def test_a_request_while_stopping_gets_503_with_a_json_detail(reader, images):
    """Guards the Stopped handler: without it the batcher's refusal would be a 500 "internal error"."""
    app = create_app(reader, "tiny", Limits(), max_batch=8, max_wait_s=0.0)
    upload = [("image", ("a.png", images[0], "image/png"))]
    answer = in_process(app, lambda client: client.post("/predict", files=upload), stop_first=True)
    assert (answer.status_code, answer.headers["content-type"]) == (503, "application/json"), answer.text
    assert answer.json() == {"detail": "the server is stopping"}


def test_health_gives_the_batch_wait_in_milliseconds(reader):
    """Guards /health's max_wait_ms: the app's max_wait_s times 1000."""
    app = create_app(reader, "tiny", Limits(), max_batch=3, max_wait_s=0.25)
    health = in_process(app, lambda client: client.get("/health")).json()
    assert (health["max_batch"], health["max_wait_ms"]) == (3, 250.0)
