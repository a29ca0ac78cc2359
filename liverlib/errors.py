"""The one exception type liverlib raises for problems a user can fix."""


class LiverlibError(Exception):
    """A problem with the user's input or environment, stated as a sentence that says what to do.

    The CLI prints these without a traceback; notebooks and the widget show them as a message.
    """
