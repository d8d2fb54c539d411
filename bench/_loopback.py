"""A server process on a loopback port and the async clients that load it (bench/serve_load.py)."""

import asyncio
import os
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Server:
    """A server process on a free loopback port (uvicorn's log line names it), stopped by SIGTERM."""

    def __init__(self, name: str, command: list[str], log: Path):
        self.name, self.log = name, log
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("w"))
        deadline = time.monotonic() + 120
        while not (found := re.search(r"Uvicorn running on (http://[\d.]+:\d+)", log.read_text())):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"error: {name} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        self.url = found.group(1)

    def cpu_s(self) -> float:
        """User + system CPU seconds the server has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(timeout=60)


async def load(url: str, requests: list[tuple[str, dict]], concurrency: int) -> tuple[list, float, float]:
    """Send every (path, httpx arguments) from `concurrency` clients, each with a connection of its
    own (one shared pool costs httpx more CPU per request): a (seconds, status, JSON answer) per
    request, in order, and the wall and CPU seconds of this client while they were sent."""
    import ssl

    import httpx  # here: --help stays cheap

    # One TLS context for all (plain HTTP uses none): each client would otherwise load the CA
    # certificates again, costing the client more CPU than many requests.
    tls = ssl.create_default_context()
    clients = [
        httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=1), timeout=60, verify=tls)
        for _ in range(concurrency)
    ]
    results: list = [None] * len(requests)
    todo = iter(range(len(requests)))

    async def one_client(client) -> None:
        for i in todo:
            path, kwargs = requests[i]
            start = time.perf_counter()
            try:
                answer = await client.post(path, **kwargs)
                status, body = answer.status_code, answer.json()
            except Exception:  # a dropped connection, a body that is not JSON: an error
                status, body = 0, None
            results[i] = (time.perf_counter() - start, status, body)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one_client(client) for client in clients))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    for client in clients:
        await client.aclose()
    return results, wall, cpu
