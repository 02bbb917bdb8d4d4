# Source: github.com/shamisen00/my-pytorch-lightning, src/cli.py (commit 0fdcd57), as in the repository.
# Run from the repository root: python -m src.cli fit  (the fit subcommand reads configs/pictures.yaml).
from lightning.pytorch.cli import LightningCLI
from src.models.picture_module import PictureModule


def main():
    # To enable variable interpolation, first install omegaconf:
    LightningCLI(
        model_class=PictureModule,
        save_config_callback=None,
        parser_kwargs={
            "parser_mode": "omegaconf",
            "fit": {"default_config_files": ["configs/pictures.yaml"]}
            }
        )


if __name__ == "__main__":
    main()
