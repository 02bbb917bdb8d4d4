"""``python -m tunecv`` is the ``tunecv`` command."""

from tunecv.cli import main

main()
