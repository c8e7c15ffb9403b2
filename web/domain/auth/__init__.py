"""Logging in and out, TOTP, the language switch."""
