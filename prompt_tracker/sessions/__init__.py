"""The session layer: Flask-Session interfaces, the conversation store, and the admin CLI."""
