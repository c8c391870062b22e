"""python-telegram-bot handlers: start/help/status, choosing a channel and a tier, join requests."""
