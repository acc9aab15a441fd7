"""The web service: one Starlette app (:mod:`campaign.web.app`) on a uvicorn server (:mod:`campaign.web.server`).

An interface, beside the command line and the scheduler: it builds nothing of its own but the app and the server,
and takes everything else (settings, the database, the signing key) from the shared application context of
:mod:`campaign.services.context`. Its URL paths are the table in :mod:`campaign.rules.routes`, which message
rendering builds its links from too. ``campaign web`` runs it alone; ``campaign serve`` runs it in the scheduler's
event loop.
"""
