"""Runs read back from disk (analysis.runs): a resumed run's several event files, and a sweep's
mean runs written again over an earlier summary's."""

from pathlib import Path
from unittest import mock

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from captcha_lab.analysis.runs import MEAN_RUNS, read_history, write_history, write_mean_runs


def write_segment(run_dir: Path, name: str, losses: dict[int, float], started: float | None = None) -> None:
    """One process's event file of a run, renamed to `name` and started at `started` (by default
    the time in its name): val/loss per epoch (from 0), each at its step with the `epoch` scalar,
    as Lightning logs them."""
    scratch = run_dir / "scratch"
    with mock.patch("time.time", return_value=started or float(name.split(".")[3])):  # its first event's
        writer = EventFileWriter(str(scratch))
    for epoch, loss in losses.items():
        step = 10 * (epoch + 1)
        values = [Summary.Value(tag="epoch", simple_value=epoch), Summary.Value(tag="val/loss", simple_value=loss)]
        writer.add_event(Event(wall_time=float(step), step=step, summary=Summary(value=values)))
    writer.close()
    (events,) = scratch.iterdir()
    events.rename(run_dir / name)
    scratch.rmdir()


def test_a_resumed_runs_later_event_files_win_its_repeated_epochs(tmp_path):
    """A run stopped and resumed twice has one event file per process, named by start time: read
    in that order, each resume's values replace those the stopped process logged for its epochs."""
    first, second, third = (
        f"events.out.tfevents.{t}.host.{pid}.0" for t, pid in [(1700000000, 9), (1700000500, 10), (1700000900, 11)]
    )
    # Written out of name order, so that neither the folder's order nor its reverse is the right one.
    write_segment(tmp_path, second, {2: 0.5, 3: 0.375})
    write_segment(tmp_path, third, {3: 0.25, 4: 0.125})
    write_segment(tmp_path, first, {0: 1.0, 1: 0.875, 2: 0.75})
    assert read_history(tmp_path)["val/loss"] == {1: 1.0, 2: 0.875, 3: 0.5, 4: 0.25, 5: 0.125}


def test_event_files_started_in_the_same_second_are_read_in_start_order(tmp_path):
    """File names hold the start to the second only, then host and pid: a run resumed within the
    same second by a process of a lower pid has the name that sorts first."""
    write_segment(tmp_path, "events.out.tfevents.1700000000.host.3.0", {0: 1.0, 1: 0.875}, 1700000000.25)
    write_segment(tmp_path, "events.out.tfevents.1700000000.host.20.0", {1: 0.5, 2: 0.25}, 1700000000.75)
    assert read_history(tmp_path)["val/loss"] == {1: 1.0, 2: 0.5, 3: 0.25}


def test_mean_runs_leave_nothing_of_an_earlier_summary(tmp_path):
    """Summarizing a sweep again (more jobs, other recipes) rewrites mean_runs/ whole: a recipe no
    longer in the sweep, or a recipe's earlier mean beside its new one, would show in TensorBoard
    as a run of this sweep."""
    write_history(tmp_path / MEAN_RUNS / "optimizer=sgd", {"val/loss": {1: 0.5}})
    write_history(tmp_path / MEAN_RUNS / "optimizer=adam", {"val/loss": {1: 0.5, 2: 0.5, 3: 0.5}})
    runs = {"optimizer=adam": [{"val/loss": {1: 1.0, 2: 0.5}}, {"val/loss": {1: 0.5, 2: 0.25}}]}
    (adam,) = write_mean_runs(tmp_path, runs)
    assert [p.name for p in (tmp_path / MEAN_RUNS).iterdir()] == ["optimizer=adam"]
    assert len(list(adam.iterdir())) == 1
    assert read_history(adam)["val/loss"] == {1: 0.75, 2: 0.375}  # not 3: the earlier mean's
