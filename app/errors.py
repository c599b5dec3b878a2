"""A webhook we refuse: the HTTP status and the reason the sender is told."""


class Rejected(Exception):
    def __init__(self, reason: str, status: int = 400, code: str = "malformed"):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.code = code  # short label for metrics: malformed, wrong_content_type, account_mismatch...
