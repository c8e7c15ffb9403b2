"""The site file in the browser: download (export) and upload (preview, apply)."""
