"""Services: the library API. Each function takes a :class:`~campaign.store.engine.Database` and plain
values, decides, and calls the store; interfaces (CLI, web, scheduler) call exactly these."""
