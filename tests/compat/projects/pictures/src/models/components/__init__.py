# Source: github.com/shamisen00/my-pytorch-lightning — package marker (the repository imports these as packages: src.models.picture_module, ...).
