"""Placeholder: being written."""


class Staging:
    def __init__(self, s3: object) -> None:
        self.s3 = s3
