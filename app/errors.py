"""The base error services raise for a request they refuse."""


class ServiceError(Exception):
    """A refused request, with a one-line message fit to show the person who made it."""
