class CaptchaLabError(Exception):
    """A user error (bad data, bad config): reported as one line, never as a traceback."""


class DataError(CaptchaLabError):
    pass


class ConfigError(CaptchaLabError):
    pass
