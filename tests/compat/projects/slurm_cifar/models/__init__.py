# Source: github.com/kouyk/pytorch-lightning-slurm — the config names `models.ResNet18`; the repository
# lists models/resnet18.py only, so this package file exposes it under that name.
from .resnet18 import ResNet18
