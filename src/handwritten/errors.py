"""The one exception type the command line turns into a message and an exit status."""


class HandwrittenError(Exception):
    """A problem with the user's input (a file, an option, a model) that has a clear explanation.

    The message names the input and says what is wrong; the CLI prints it without a traceback
    and exits with status 2.
    """


class DataError(HandwrittenError):
    """A data file or folder that cannot be used as it is."""


class NoInk(HandwrittenError):
    """An image that holds nothing to read: a blank page, or too little contrast.

    Reading one character, this is an answer ("not a character"), not a failure.
    """


class TooManyMarks(HandwrittenError):
    """An image in more separate marks than a character or a line has: a sheet of dots, noise.

    Reading one character, this too is an answer ("not a character"), given before the marks are grouped.
    """
