# Source: github.com/SGpirr/lightning-wandb, lightning/lightning_cli.py (commit 0fe4855).
# Trimmed: the unused `decouple` LOG_ROOT lookup and the demo-class imports; the call is as in the repository.
import wandb
from lightning.pytorch.loggers import WandbLogger
from lightning_module import LitMNIST, MNISTDataModule, pl
from lightning.pytorch.cli import LightningCLI


def main():
    cli = LightningCLI(LitMNIST, MNISTDataModule,
                       save_config_kwargs={"overwrite": True}
                       )


if __name__ == "__main__":
    main()
