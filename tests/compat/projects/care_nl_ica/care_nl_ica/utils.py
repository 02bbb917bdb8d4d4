# Source: github.com/rpatrik96/nl-causal-representations, care_nl_ica/utils.py (commit 070bc59).
# Trimmed to what cli.py uses: add_tags as in the repository; install_package no longer pip-installs the
# repository (it only checks that the package imports).


def add_tags(args):
    try:
        args.tags
    except Exception:
        args.tags = []
    if args.tags is None:
        args.tags = []
    if args.data.use_sem is True:
        args.tags.append("sem")
    args.tags.append("nonlinear" if args.data.nonlin_sem is True else "linear")
    if args.model.sinkhorn is True:
        args.tags.append("sinkhorn")
    if args.data.permute is True:
        args.tags.append("permute")
    if args.model.use_ar_mlp is False:
        args.tags.append("mlp")
    else:
        args.tags.append("bottleneck")
        if args.model.triangular is True:
            args.tags.append("triangular")
    if args.model.normalize_latents is True:
        args.tags.append("normalization")
    if args.model.l1 != 0.0:
        args.tags.append("L1")
    return list(set(args.tags))


def install_package():
    """The repository pip-installs itself here when `import care_nl_ica` fails; this copy only imports it."""
    import care_nl_ica  # noqa: F401
