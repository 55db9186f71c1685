"""A module whose import never ends, for the test of SIGINT before serving."""

from tests.commands.cli_targets import block_on_import

block_on_import()
