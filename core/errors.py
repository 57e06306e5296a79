"""The hub's exception classes; views and consumers map them to statuses and dead letters."""


class HubError(Exception):
    """Base class of every error the hub raises on purpose."""


class NotFound(HubError):
    """The requested record does not exist."""


class BadRequest(HubError):
    """The caller's input cannot be used, with a sentence saying why."""


class Unauthorized(HubError):
    """The caller did not present a valid API token."""


class InvalidEvent(HubError):
    """An event on the bus failed decoding or validation; it goes to the dead-letter subject."""


class HubNotRunning(HubError):
    """A CLI command needs a running hub (or HUB_NATS_URL) and found none."""


class EventTooLarge(HubError):
    """An event is over the NATS server's max_payload; the message says what to change."""


class UnknownDomain(BadRequest):
    """A knowledge domain that is not one of core.knowledge.DOMAINS."""


class UnsafePath(BadRequest):
    """A knowledge path that is absolute, climbs out with '..', or resolves outside the folder."""


class UsageError(HubError):
    """A command-line option breaks a rule; the CLI exits with status 2, as argparse does."""
