# Source: github.com/kouyk/pytorch-lightning-slurm, datamodule/__init__.py (commit c4308f9), as in the repository.
from .cifar10 import CIFAR10DataModule
