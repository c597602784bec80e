"""One module per `smeter` subcommand (host_tools/cli.py lists them).

A command module parses its arguments and calls library code (host_tools/ packages named by
concept); it holds no logic another command needs, and no command module imports another.
"""
