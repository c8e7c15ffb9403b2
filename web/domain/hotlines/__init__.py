"""Hotlines (400号码): routing and screening settings, and the routing simulator."""
