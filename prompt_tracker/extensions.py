"""Every extension, created unbound here and bound to the app in ``create_app``."""

from flask_socketio import SocketIO
from flask_wtf.csrf import CSRFProtect

from .services import Services

csrf = CSRFProtect()
# The session is Flask-Session's (server-side), so Socket.IO must not keep its own copy.
socketio = SocketIO(manage_session=False)
services = Services()
