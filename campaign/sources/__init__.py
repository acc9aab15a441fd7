"""Readers of outside data (contact files): they parse and report, and leave deciding to the services."""
