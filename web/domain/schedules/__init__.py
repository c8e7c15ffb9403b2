"""Schedules (工作时间): weekly opening hours and the public-holiday calendar."""
