"""campaign: email invitation and reminder campaigns for events and webinars.

Each recipient sees the session in their own time zone and language. The library is usable on its own;
the ``campaign`` command is a thin layer over :mod:`campaign.services`.
"""

__version__ = "0.1.0"
