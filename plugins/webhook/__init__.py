"""streamspace-webhook: every event POSTed to a URL, signed per Standard Webhooks."""
