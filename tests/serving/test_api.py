"""POST /predict and GET /health on a real server (conftest.server): the answers are predict.py's,
every bad request is a 4xx naming its problem, and concurrent requests are batched together
without mixing up their answers."""

import base64
import io
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import PIL.Image
import pytest

from captcha_lab.inference.reader import Prediction

from ..conftest import ROOT
from ..data.image_files import png_header
from .conftest import LIMITS


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    PIL.Image.new("L", (width, height), 255).save(out, "PNG")
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def files(*blobs: bytes) -> dict:
    return {"files": [("image", (f"{i}.png", blob, "image/png")) for i, blob in enumerate(blobs)]}


def assert_same(answer: httpx.Response, expected: list[Prediction]) -> None:
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["text"] for r in results] == [p.text for p in expected]
    for got, want in zip(results, expected, strict=True):
        # Other batch sizes may round differently in the last bits.
        assert got["confidence"] == pytest.approx(want.confidence, rel=1e-4)
        assert got["char_confidences"] == pytest.approx(list(want.char_confidences), rel=1e-4)
        assert len(got["char_confidences"]) == len(got["text"])


def test_health_describes_the_model_and_limits(server, reader, tiny_ckpt):
    health = server.client.get("/health").json()
    assert health["status"] == "ok" and health["model"] == str(tiny_ckpt)
    assert health["checkpoint_sha256"] == reader.checkpoint_sha256
    assert health["alphabet"] == reader.charset.symbols and health["length"] == reader.length
    assert health["min_length"] == reader.length  # the report's net reads one length
    assert health["input_size"] == list(reader.image_size) and health["channels"] == reader.channels
    assert health["version"] and health["limits"] == LIMITS


def test_health_gives_the_settings_batch_wait(server):
    """Guards the wait's trip from serve.yaml's milliseconds to the batcher's seconds and back."""
    assert server.client.get("/health").json()["max_wait_ms"] == 20  # conftest.server's setting


def test_the_api_is_documented(server):
    paths = server.client.get("/openapi.json").json()["paths"]
    body = paths["/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body) and "/health" in paths
    assert server.client.get("/docs").status_code == 200


def test_uploads_are_read_as_predict_py_reads_them(server, reader, images):
    assert_same(server.client.post("/predict", **files(*images[:4])), reader.predict(images[:4]))


def test_the_answers_are_predict_py_s_own(server, tiny_ckpt, images, tmp_path):
    """predict.py itself on the same files: its `path<TAB>text<TAB>confidence` lines, in file order."""
    for i, blob in enumerate(images[:4]):
        (tmp_path / f"{i}.png").write_bytes(blob)
    command = [sys.executable, "predict.py", f"ckpt_path={tiny_ckpt}", f"input={tmp_path}"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = [line.split("\t")[1:] for line in done.stdout.splitlines()]
    results = server.client.post("/predict", **files(*images[:4])).json()["results"]
    assert [[r["text"], f"{r['confidence']:.4g}"] for r in results] == printed


@pytest.mark.parametrize(
    "body",
    [
        lambda blobs: {"images": [b64(b) for b in blobs]},
        lambda blobs: {"images": [base64.encodebytes(b).decode() for b in blobs]},  # wrapped at 76 characters
        lambda blobs: {"images": [f"data:image/png;base64,{b64(b)}" for b in blobs]},
        lambda blobs: {"image": b64(blobs[0])},
    ],
    ids=["base64", "wrapped", "data-url", "one"],
)
def test_json_base64_is_read_as_predict_py_reads_it(server, reader, images, body):
    sent = body(images[4:7])
    expected = reader.predict(images[4:7] if "images" in sent else images[4:5])
    assert_same(server.client.post("/predict", json=sent), expected)


GOOD, HUGE, LARGE = png(200, 50), png(200, 200), "A" * 250_000
FORM = b"--XyZ\r\nContent-Disposition: form-data; name=image; filename=a.png\r\n\r\n" + GOOD + b"\r\n--XyZ--\r\n"
BAD_REQUESTS = {
    "empty upload": (files(b""), 400, "image 0: empty file"),
    "truncated upload": (files(GOOD[: len(GOOD) // 2]), 400, "image 0: not a readable image"),
    "not an image": (files(GOOD, b"GIF89a, or so it says"), 400, "image 1: not a readable image"),
    "bad base64": ({"json": {"images": [b64(GOOD), "%%%"]}}, 400, "image 1: not valid base64"),
    "non-ASCII base64": ({"json": {"images": ["é"]}}, 400, "image 0: not valid base64"),
    "data URI, no comma": ({"json": {"image": "data:image/png;base64"}}, 400, "image 0: a data: URI has no comma"),
    "not JSON": ({"content": b"{", "headers": {"content-type": "application/json"}}, 400, "JSON body: Invalid JSON"),
    "no images key": ({"json": {}}, 400, 'give "images"'),
    "both keys": ({"json": {"image": "", "images": []}}, 400, "not both or neither"),
    "unknown key": ({"json": {"imgs": []}}, 400, "JSON imgs: Extra inputs are not permitted"),
    "images not a list": ({"json": {"images": "abc"}}, 400, "JSON images: Input should be a valid"),
    "no images": ({"json": {"images": []}}, 400, "no images in the request"),
    "form field": ({"files": [("image", (None, "abc"))]}, 400, "form field 'image' is not a file"),
    "cut multipart": (
        {"content": FORM[:-20], "headers": {"content-type": "multipart/form-data; boundary=XyZ"}},
        400,
        "no images in the request: no complete file part (is the body cut short?)",
    ),
    "no boundary": ({"content": b"x", "headers": {"content-type": "multipart/form-data"}}, 400, "multipart body:"),
    "wrong content type": ({"content": b"x", "headers": {"content-type": "text/plain"}}, 415, "text/plain is not"),
    "no content type": ({"content": b"x"}, 415, "content type (none) is not accepted"),
    "too many (JSON)": ({"json": {"images": [b64(GOOD)] * 5}}, 413, "5 images: more than the limit of 4 images"),
    "too many (files)": (files(*[GOOD] * 5), 413, "more than the limit of 4 images"),
    "body too large": ({"json": {"images": [LARGE]}}, 413, "is more than the limit of 200000"),
    "chunked too large": (
        {"content": iter([b'{"images": ["', LARGE.encode(), b'"]}']), "headers": {"content-type": "application/json"}},
        413,
        "the body is more than the limit of 200000 bytes",
    ),
    "too many pixels": (files(HUGE), 413, "image 0: 200x200 pixels is more than the limit of 20000"),
    # A header past PIL's own decompression-bomb check: too large, not unreadable.
    "bomb": (files(png_header(20_000, 20_000)), 413, "image 0: more pixels than the limit of 20000"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_a_bad_request_gets_a_4xx_naming_its_problem(server, case):
    request, status, message = case
    answer = server.client.post("/predict", **request)
    assert (answer.status_code, answer.headers["content-type"]) == (status, "application/json"), answer.text
    assert message in answer.json()["detail"]
    assert server.client.post("/predict", **files(GOOD)).status_code == 200  # and the server still reads


def test_a_malformed_multipart_body_is_answered_not_also_logged(server):
    body = b"\x89PNG\r\n"  # a file sent raw under a multipart content type
    answer = server.client.post("/predict", content=body, headers={"content-type": "multipart/form-data; boundary=XyZ"})
    assert answer.status_code == 400
    assert server.client.get("/health").status_code == 200  # a request after it: the log has caught up
    assert "Expected boundary character" not in server.log.read_text()  # python-multipart's warning


def test_other_methods_and_paths_get_json_errors(server):
    assert server.client.get("/predict").json() == {"detail": "Method Not Allowed"}
    assert server.client.get("/nowhere").status_code == 404


def test_concurrent_requests_are_batched_and_answered_to_their_own_callers(server, reader, images):
    """15 callers at once, each with its own images (one or two); the server waits 20 ms for a
    batch to fill, so they share batches."""
    requests = [images[i : i + 1 + i % 2] for i in range(len(images) - 1)]
    expected = [reader.predict(blobs) for blobs in requests]
    before = server.client.get("/health").json()
    start = threading.Barrier(len(requests))  # sent together, however slowly the threads start

    def send(blobs: list[bytes]) -> httpx.Response:
        body = {"images": [b64(b) for b in blobs]}
        with httpx.Client(base_url=server.url, timeout=30) as client:
            start.wait(timeout=30)
            return client.post("/predict", json=body)

    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(send, requests))
    for answer, want in zip(answers, expected, strict=True):
        assert_same(answer, want)
    after = server.client.get("/health").json()
    assert after["images_read"] - before["images_read"] == sum(map(len, requests))
    assert after["batches"] - before["batches"] < len(requests)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc")
def test_the_server_runs_without_pytorch(server):
    """import-linter checks our imports; this, everything the process loaded (Hydra's plugins too)."""
    assert "libtorch" not in Path(f"/proc/{server.process.pid}/maps").read_text()


def test_the_cut_multipart_case_is_cut_from_a_body_that_reads(server):
    answer = server.client.post("/predict", content=FORM, headers={"content-type": "multipart/form-data; boundary=XyZ"})
    assert answer.status_code == 200 and len(answer.json()["results"]) == 1


def test_a_request_at_each_limit_is_read_and_the_media_type_is_case_blind(server):
    body = f'{{"images": ["{b64(GOOD)}"]}}'.encode()
    at_limit = body + b" " * (LIMITS["max_body_bytes"] - len(body))  # JSON may end in white space
    answers = [
        server.client.post("/predict", json={"images": [b64(GOOD)] * LIMITS["max_images"]}),
        server.client.post("/predict", **files(png(200, LIMITS["max_pixels"] // 200))),
        server.client.post("/predict", content=at_limit, headers={"content-type": "application/json"}),
        server.client.post("/predict", content=body, headers={"content-type": "Application/JSON; charset=UTF-8"}),
    ]
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    assert len(answers[0].json()["results"]) == LIMITS["max_images"]
