"""The login form: email and password, with the page's CSRF token."""

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import InputRequired, Length

from ...auth.models import MAX_EMAIL_CHARS


class LoginForm(FlaskForm):
    """Fields ``email`` and ``password`` (names scripts outside the app post to)."""

    email = EmailField("Email", validators=[InputRequired(), Length(max=MAX_EMAIL_CHARS)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1024)])
