"""Errors the local host raises for a configuration or an app it cannot run."""


class HostError(Exception):
    """The host cannot start: the message says what to fix."""


class SettingsError(HostError):
    """host.json, local.settings.json or an app setting is missing or invalid."""


class CatalogError(HostError):
    """function_app.py cannot be imported or its function metadata is unusable."""


class RouteError(HostError):
    """An HTTP route template uses syntax the local host does not understand."""


class MessageDecodeError(Exception):
    """A queue message's text is not valid for the configured message encoding."""
