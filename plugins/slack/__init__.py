"""streamspace-slack: session and user notifications to a Slack incoming webhook."""
