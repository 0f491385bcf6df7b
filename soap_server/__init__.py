"""tfsoap's SOAP side: the Spyne application that publishes ``PredictService``."""

__version__ = "0.1.0"
