"""Mail transport: the SMTP sender pool and the built-in capture server."""
