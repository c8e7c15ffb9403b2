"""Browser tests: Playwright driving Debian's headless Chromium against a running linebox."""
