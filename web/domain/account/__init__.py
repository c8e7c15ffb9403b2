"""The user's own account: password, TOTP, API tokens."""
