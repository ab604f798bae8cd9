"""The playground: system prompt, model settings and the conversation."""

from flask import Blueprint

bp = Blueprint("playground", __name__, url_prefix="/playground", template_folder="templates")

from . import earlier, events, routes, save_case, workbench  # noqa: E402,F401  (registers the views and socket handlers)
from .prompt import load_prompt  # noqa: E402

# After the app's before-request hooks (who is asking), unlike the URL's value preprocessor.
bp.before_request(load_prompt)
