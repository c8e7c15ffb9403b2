"""Notices: missed-call SMS, low balance, suspension, voicemail, alerts.

`outbox` writes a notice row in the caller's transaction (so a notice is
never lost and never written twice); the worker's `send_notice` task hands it
to a gateway (`gateways`: SMTP, SMPP or an HTTP webhook) and retries with
backoff, keeping the state and the last error on the row for the portal.
"""
