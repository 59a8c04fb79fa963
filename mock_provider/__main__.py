"""``python -m mock_provider``: see ``mock_provider/cli.py``."""

from mock_provider.cli import main

main()
