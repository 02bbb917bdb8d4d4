# Source: github.com/PaulLerner/ViQuAE, meerqat/train/trainer.py (commit aea2b04), with the usage docstring shortened and
# `description=` moved into parser_kwargs (LightningCLI 2.x has no description argument). Run: python -m meerqat.train.trainer fit --config experiments/rc/viquae/config.yaml
"""Main training script based on pytorch lightning."""
import pytorch_lightning as pl
from pytorch_lightning.cli import LightningCLI


def main():
    cli = LightningCLI(
        trainer_class=pl.Trainer,
        # same default as transformers although it is unlikely that the calls are in the exact same order
        seed_everything_default=42,
        parser_kwargs={"description": 'Main training script based on pytorch lightning.'},
    )
    return cli


if __name__ == "__main__":
    main()
