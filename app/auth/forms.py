"""Forms of the sign-in pages; Flask-WTF adds the CSRF token."""
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    """Email and password."""

    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired()])


class SignupForm(LoginForm):
    """Email and a new password."""

    password = PasswordField("Password", validators=[DataRequired(), Length(min=8, max=200)])
