"""Rendering: local times, templates, calendar invites and message bytes. Pure computation, no I/O beyond
reading template files."""
