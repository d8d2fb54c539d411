"""The app on uvicorn in a thread of this process, for what the served one (small limits) cannot show."""

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
