# Source: github.com/rpatrik96/nl-causal-representations, care_nl_ica/__init__.py — package marker.
