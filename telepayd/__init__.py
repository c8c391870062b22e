"""telepayd: sell access to private Telegram channels, paid in crypto through NowPayments."""

__version__ = "0.1.0"
