"""Channels, routes and the config file that declares them."""
