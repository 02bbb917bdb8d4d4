# Source: github.com/PaulLerner/ViQuAE, meerqat/train/__init__.py — package marker.
