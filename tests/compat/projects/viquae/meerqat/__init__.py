# Source: github.com/PaulLerner/ViQuAE, meerqat/__init__.py — package marker.
