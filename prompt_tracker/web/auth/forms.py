"""The login form: email and password."""

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import InputRequired, Length

from ...auth.models import MAX_EMAIL_CHARS


class LoginForm(FlaskForm):
    """Fields ``email`` and ``password`` (names scripts outside the app post to).

    Its CSRF token is not Flask-WTF's (kept in the session) but ``login_token``'s (a cookie of its own),
    so that viewing the login page stores no session.
    """

    class Meta:
        csrf = False  # checked by the view with ``login_token.valid_login_token``

    email = EmailField("Email", validators=[InputRequired(), Length(max=MAX_EMAIL_CHARS)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1024)])
