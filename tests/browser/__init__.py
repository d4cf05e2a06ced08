"""Real-browser tests: Debian's Chromium, driven by Playwright, against ``lychgate serve``."""
