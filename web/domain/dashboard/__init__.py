"""The dashboard: today at a glance, and calls in progress pushed over WebSocket."""
