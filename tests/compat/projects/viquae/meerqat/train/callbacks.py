# Source: github.com/PaulLerner/ViQuAE, meerqat/train/callbacks.py (commit 3a624e3), docstring shortened;
# trainer.test gets datamodule=trainer.datamodule (pytorch_lightning 1.7 reused the fit's data module,
# 2.x looks for the model's own test_dataloader without it).
from typing import Optional
from pytorch_lightning.callbacks import Callback


class TestAfterFit(Callback):
    """Calls trainer.test with 'best' ckpt on fit end (so configure ModelCheckpoint to save the best model).

    data_update: attributes of trainer.datamodule to update before running test.
    """
    def __init__(self, data_update: Optional[dict] = None):
        super().__init__()
        self.data_update = data_update

    def on_fit_end(self, trainer, pl_module):
        if self.data_update is not None:
            for k, v in self.data_update.items():
                if not hasattr(trainer.datamodule, k):
                    raise AttributeError(f"{trainer.datamodule.__class__.__name__} has no attribute '{k}'")
                setattr(trainer.datamodule, k, v)
        trainer.test(pl_module, datamodule=trainer.datamodule, ckpt_path="best")
