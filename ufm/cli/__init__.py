"""The ``ufm`` command line: subcommands of the registered systems and ``ufm sweep``."""
