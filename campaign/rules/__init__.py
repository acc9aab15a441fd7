"""Pure policy: validation and normalisation of input, and (later) retry, audience and timing rules.

Nothing here does I/O or imports a database or network library; every rule is testable on its own.
"""
