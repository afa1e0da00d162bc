"""streamspace-discord: session and user lifecycle notifications as Discord webhook embeds."""
