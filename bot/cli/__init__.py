"""The ``opsbot`` command line (``bot.cli.main:main``): one module per subcommand, the shared ``fail`` in its own.

The top wing: may import anything in ``bot`` (and, for ``opsbot demo`` only, the ``fakes``
package of a source checkout).
"""
