"""A resumed run is the run it replaces (issue 29, finding 5).

On CPU with a fixed seed, a run stopped after an epoch's checkpoint (or in the middle of the next epoch) and
resumed with ``resume=True`` ends with exactly the metrics and weights of the run that was never stopped:
dropout continues the random stream where the stopped run left it, and the train loader shuffles epoch k as
the uninterrupted run did.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch

from tests.conftest import tiny_digits
from tunecv.train import train


class Stop(RuntimeError):
    """Raised by :class:`StopAt` to stop a run as a kill would."""


class StopAt(L.Callback):
    """Stops the run at the end of epoch ``epoch`` (after its checkpoint), or at its batch ``batch``."""

    def __init__(self, epoch: int, batch: int | None = None) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.batch is not None and trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise Stop(f"stopped in epoch {self.epoch} at batch {batch_idx}")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.batch is None and trainer.current_epoch == self.epoch:
            raise Stop(f"stopped after epoch {self.epoch}")


def _cfg(tmp_path, name, **data):
    cfg = tiny_digits(tmp_path / name, name=name)
    cfg["model"]["init_args"]["dropout"] = 0.3  # dropout draws from torch's generator at every step
    cfg["data"]["init_args"]["batch_size"] = 32  # several shuffled batches per epoch
    cfg["data"]["init_args"].update(data)
    cfg["trainer"]["max_epochs"] = 4
    cfg["early_stopping"] = None
    return cfg


def _weights(result):
    state = torch.load(result.last_checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    return {key: value.clone() for key, value in state.items()}


def _stopped_and_resumed(tmp_path, name, stop, **data):
    cfg = _cfg(tmp_path, name, **data)
    with pytest.raises(Stop):
        train(cfg, callbacks=[stop], quiet=True)
    return train(cfg, resume=True, quiet=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    result = train(_cfg(tmp_path_factory.mktemp("whole"), "whole"), quiet=True)
    return result, _weights(result)


def _assert_same(result, uninterrupted):
    whole, whole_weights = uninterrupted
    assert result.status == "completed"
    assert result.metrics == whole.metrics  # exactly, not approximately
    weights = _weights(result)
    assert weights.keys() == whole_weights.keys()
    for key, value in whole_weights.items():
        assert torch.equal(weights[key], value), key


def test_a_run_stopped_after_an_epoch_and_resumed_ends_exactly_as_the_uninterrupted_run(tmp_path, uninterrupted):
    result = _stopped_and_resumed(tmp_path, "whole", StopAt(epoch=1))
    _assert_same(result, uninterrupted)


def test_a_run_stopped_in_the_middle_of_an_epoch_resumes_from_the_last_epoch_and_ends_exactly_the_same(
        tmp_path, uninterrupted):
    # Lightning writes last.ckpt at epoch ends: the resumed run replays epoch 2 from the end of epoch 1
    result = _stopped_and_resumed(tmp_path, "whole", StopAt(epoch=2, batch=3))
    _assert_same(result, uninterrupted)


def _plain_cfg(tmp_path, name, own_generator, folded):
    split = {"fold_method": "kfold", "total_folds": 2, "test_split": "none"} if folded else {"fold_method": "none"}
    return {
        "split": split,
        "name": name, "artifact_dir": str(tmp_path / name / "artifacts"),
        "model": {"class_path": "tests.integration._resume_plain.DropoutNet"},
        "data": {"class_path": "tests.integration._resume_plain.PlainData",
                 "init_args": {"own_generator": own_generator}},
        "trainer": {"max_epochs": 4, "enable_model_summary": False, "enable_progress_bar": False},
        "accelerator": "cpu", "devices": [0], "cv": {"scoring_metric": ["val/loss:lower"]},
    }


@pytest.mark.parametrize("folded", [False, True], ids=["own-loaders", "fold-loaders"])
@pytest.mark.parametrize("own_generator", [False, True], ids=["torch-generator", "loader-generator"])
def test_a_plain_data_modules_shuffled_loader_resumes_exactly(tmp_path, own_generator, folded):
    # its own loaders as they are, or the fold loaders tunecv builds with their settings (fold_data)
    whole = train(_plain_cfg(tmp_path, "whole", own_generator, folded), quiet=True)
    cfg = _plain_cfg(tmp_path, "stopped", own_generator, folded)
    with pytest.raises(Stop):
        train(cfg, callbacks=[StopAt(epoch=1)], quiet=True)
    _assert_same(train(cfg, resume=True, quiet=True), (whole, _weights(whole)))
