"""streamspace-teams: session and user notifications in a Microsoft Teams channel."""
