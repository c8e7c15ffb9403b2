"""The linebox worker: huey tasks for everything slow or retried (call records,
billing, recordings, notices). `appliance.worker.tasks` imports them all."""
