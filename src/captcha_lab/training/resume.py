"""Resuming a run (`ckpt_path=`): the checkpoint must fit the system, and the data module must
split the same images with the same settings, or the resumed run would test on images it
trained on."""

from pathlib import Path

from captcha_lab.models.base import weights_spec
from captcha_lab.models.checkpoint import CheckpointError, check_matches, read_checkpoint
from captcha_lab.training.system import CaptchaSystem

# What decides which images are train, val and test. A resume must draw the same split, or it
# would test on images it trained on before (as would ckpt_init=, which warns: init_overlap).
SPLIT_KEYS = (
    "dir test_dir labels seed val_fraction test_fraction folds fold length max_length synthetic synthetic_seed".split()
)


def split_changes(ckpt: dict, data: dict) -> list[str]:
    """The SPLIT_KEYS whose value in `data` differs from the checkpoint's run (folders by path)."""
    theirs = ckpt.get("datamodule_hyper_parameters") or {}
    changed = []
    for key in (k for k in SPLIT_KEYS if k in theirs and k in data):
        there, here = theirs[key], data[key]
        if key.endswith("dir") and None not in (there, here):
            there, here = str(Path(there).resolve()), str(Path(here).resolve())
        if there != here:
            changed.append(key)
    return changed


def images_changed(path: str | Path, ckpt: dict, datamodule) -> str | None:
    """Why the images `datamodule` (after setup) splits are not those the run split, or None.
    The split settings are not enough: an image added to or removed from the folder since
    reshuffles every split. Lightning keeps the data module's state_dict() under its class name."""
    there, source = ckpt.get(type(datamodule).__qualname__), datamodule.source
    if not there or there == source:  # a fit without this data module records none
        return None
    now = f"{source['images']}" if source["images"] != there["images"] else f"{source['images']} others"
    return f"{path}: its run split {there['images']} usable images of {datamodule.folder}, which now holds {now}"


def check_same_split(path: str | Path, ckpt: dict, data: dict) -> None:
    theirs = ckpt.get("datamodule_hyper_parameters") or {}
    for key in split_changes(ckpt, data):
        raise CheckpointError(
            f"{path}: trained on another split (data.{key}={theirs[key]!r} there, {data[key]!r} here);"
            " resume with its data settings"
        )


def init_overlap(path: str | Path, ckpt: dict, datamodule) -> str | None:
    """Why the weights of `ckpt` (a warm start, ckpt_init=) may have trained on images that
    `datamodule` validates or tests on, or None: its run drew from the same folder but split it
    otherwise, or the folder's images changed since (which reshuffles every split), or it trained
    on the folder that data.test_dir scores here."""
    theirs, data = ckpt.get("datamodule_hyper_parameters") or {}, dict(datamodule.hparams)
    if not theirs:
        return None
    if data["test_dir"] and theirs.get("dir") and Path(theirs["dir"]).resolve() == Path(data["test_dir"]).resolve():
        return f"{path}: its run trained on {theirs['dir']}, which data.test_dir scores here"
    changed = split_changes(ckpt, data)
    if theirs.get("test_dir") and data["test_dir"]:  # dir's split alike: test_fraction unused, test elsewhere
        changed = [k for k in changed if k not in ("test_dir", "test_fraction")]
    if {"dir", "synthetic", "synthetic_seed"} & set(changed):  # other images: nothing shared
        return None
    if changed:
        key = changed[0]
        split = f"data.{key}={theirs[key]!r} there, {data[key]!r} here"
        return f"{path}: its run split {datamodule.folder} otherwise ({split})"
    datamodule.prepare_data()
    datamodule.setup("fit")  # fit's own setup then reuses what it read
    return images_changed(path, ckpt, datamodule)


def check_same_settings(path: str | Path, ckpt: dict, system: CaptchaSystem) -> None:
    """The optimizer's and schedule's settings (CaptchaSystem's factory_settings) must be the
    run's: torch restores the optimizer's from its state, so a resume at lr=1e-4 would train on
    at the checkpoint's 1e-3, its config and run name saying 1e-4. Checkpoints from before these
    were kept are not checked."""
    for key in ("optimizer_settings", "scheduler_settings"):
        theirs, ours = ckpt["hyper_parameters"].get(key), system.hparams.get(key)
        changed = sorted(k for k in (theirs or {}).keys() & (ours or {}).keys() if theirs[k] != ours[k])
        if changed:
            what, k = key.split("_")[0], changed[0]
            raise CheckpointError(
                f"{path}: trained with {what} {k}={theirs[k]!r} there, {ours[k]!r} here; resume with its"
                " settings, or start afresh from its weights with ckpt_init="
            )


def optimizer_change(ckpt: dict, system: CaptchaSystem) -> tuple[list[str], list[str]] | None:
    """The settings only the checkpoint's optimizer has and those only `system`'s has, when each
    side has some: another kind of optimizer. torch loads any optimizer's state into any other,
    which then fails at its first step (adam -> sgd: a KeyError deep in the fit). Settings on one
    side only are what a newer torch added to the same optimizer: not a change."""
    saved = ckpt.get("optimizer_states") or []  # none in a weights-only checkpoint
    if not saved:
        return None
    ours = system.optimizer_factory(list(system.parameters()))  # no state until its first step
    theirs_keys, ours_keys = set(saved[0]["param_groups"][0]), set(ours.param_groups[0])
    if theirs_keys <= ours_keys or ours_keys <= theirs_keys:
        return None
    return sorted(theirs_keys - ours_keys), sorted(ours_keys - theirs_keys)


def check_resumable(path: str | Path, system: CaptchaSystem, datamodule=None) -> int:
    """Before `fit(ckpt_path=...)`: the checkpoint must be plain data and fit `system`. Lightning
    would otherwise fail with a state-dict traceback, or (same sizes, other symbols or another
    activation) silently train a model whose outputs mean other things; and `datamodule` must
    split the same images with the same settings as the run did (the cheap checks first: the
    images are read last, here, as fit would read them). Returns its epochs done as Lightning's
    fit loop reads them at a resume (it stops once they reach max_epochs); one saved during its
    last validation counts one more there (train() checks after fit for that)."""
    ckpt = read_checkpoint(path)
    check_matches(path, ckpt, system.hparams["symbols"], system.hparams["net_spec"]["kind"])
    if datamodule is not None:
        check_same_split(path, ckpt, dict(datamodule.hparams))
    ours_spec, theirs_spec = (
        weights_spec(s) for s in (system.hparams["net_spec"], ckpt["hyper_parameters"]["net_spec"])
    )
    for key in (k for k in ours_spec if theirs_spec.get(k) != ours_spec[k]):
        raise CheckpointError(
            f"{path}: holds another net (model.{key}={theirs_spec.get(key)!r} there, {ours_spec[key]!r} here);"
            " resume with its model settings"
        )
    if change := optimizer_change(ckpt, system):
        raise CheckpointError(
            f"{path}: trained with another optimizer (settings {', '.join(change[0])} there, {', '.join(change[1])}"
            " here); resume with its optimizer, or start afresh from its weights with ckpt_init="
        )
    check_same_settings(path, ckpt, system)
    theirs = {k: tuple(v.shape) for k, v in ckpt["state_dict"].items()}
    ours = {k: tuple(v.shape) for k, v in system.state_dict().items()}
    for key in sorted(theirs.keys() | ours.keys()):
        if theirs.get(key) != ours.get(key):
            raise CheckpointError(
                f"{path}: does not fit this model ({key} is {theirs.get(key)} there, {ours.get(key)} here)"
            )
    if datamodule is not None:  # last: it reads (or generates) every image
        datamodule.prepare_data()
        datamodule.setup("fit")  # fit's own setup then reuses what it read
        if why := images_changed(path, ckpt, datamodule):
            raise CheckpointError(f"{why}: not the same split; resume with the folder as it was")
    progress = ckpt.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    return int(progress.get("current", {}).get("processed", 0))
