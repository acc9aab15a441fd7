"""The scheduler service: fires due waves exactly once and runs delivery workers (a later issue fills it).

It is an interface layer, like the CLI: it reads configuration, builds the database handle and calls
:mod:`campaign.services`; it holds no state that a restart would lose.
"""
