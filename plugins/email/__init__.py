"""streamspace-email: session and user notifications by e-mail over SMTP, or as digests."""
