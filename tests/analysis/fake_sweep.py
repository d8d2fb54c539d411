"""Fake multirun job dirs for the analysis tests: overrides.yaml, metrics.json and a small event
file, written directly (no training), so the tests are fast and deterministic."""

import json
from pathlib import Path

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter


def write_events(run_dir: Path, curves: dict[str, list[float]]) -> None:
    """Scalars per epoch as Lightning logs them: each value at a step with the `epoch` scalar."""
    writer = EventFileWriter(str(run_dir))
    for epoch in range(max(len(values) for values in curves.values())):
        step = 10 * (epoch + 1)
        tags = {"epoch": float(epoch), **{tag: v[epoch] for tag, v in curves.items() if epoch < len(v)}}
        values = [Summary.Value(tag=tag, simple_value=value) for tag, value in tags.items()]
        writer.add_event(Event(wall_time=float(step), step=step, summary=Summary(value=values)))
    writer.close()


def make_job(sweep: Path, name: str, overrides: list[str], metrics: dict, curves: dict | None = None) -> Path:
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job / "metrics.json").write_text(json.dumps(metrics))
    if curves:
        write_events(job, curves)
    return job
