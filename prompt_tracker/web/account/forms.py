"""The password change form: the current password, and the new one twice."""

from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import EqualTo, InputRequired, Length

from ...auth.accounts import MIN_PASSWORD_CHARS


class PasswordForm(FlaskForm):
    """Change one's own password."""

    current_password = PasswordField("Current password", validators=[InputRequired(), Length(max=1024)])
    new_password = PasswordField("New password", validators=[InputRequired(), Length(min=MIN_PASSWORD_CHARS, max=1024)])
    confirm_password = PasswordField(
        "New password again",
        validators=[InputRequired(), EqualTo("new_password", message="The two new passwords differ.")],
    )
