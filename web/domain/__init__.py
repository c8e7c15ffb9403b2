"""One folder per area of the app: controllers, services, schemas."""
