"""Error types: every user-facing failure is one line naming where it happened."""


class CvstreamError(Exception):
    """Base class. ``str(err)`` is the single line printed to the user."""


class ParamError(CvstreamError):
    """A block parameter is missing, unknown or has the wrong type or value."""

    def __init__(self, field: str, message: str):
        super().__init__(f"parameter '{field}': {message}")
        self.field = field
        self.message = message


class GraphError(CvstreamError):
    """A flow graph is invalid. Carries ``file:line`` when known."""

    def __init__(self, message: str, source: str | None = None, line: int | None = None):
        self.message = message
        self.source = source
        self.line = line
        super().__init__(self.where() + message)

    def where(self) -> str:
        if self.source and self.line:
            return f"{self.source}:{self.line}: "
        if self.source:
            return f"{self.source}: "
        return ""


class GraphErrors(CvstreamError):
    """Several validation errors found at once (each one line)."""

    def __init__(self, errors: list[GraphError], total: int | None = None):
        self.errors = sorted(errors, key=lambda e: (e.source or "", e.line or 0))
        lines = [str(e) for e in self.errors]
        if total is not None and total > len(errors):
            lines.append(f"... and {total - len(errors)} more")
        super().__init__("\n".join(lines))


class BlockFailure(CvstreamError):
    """A block raised while running; names the block and the cause."""

    def __init__(self, block_name: str, block_type: str, cause: BaseException):
        self.block_name = block_name
        self.cause = cause
        detail = str(cause) or type(cause).__name__
        if not isinstance(cause, CvstreamError):
            detail = f"{type(cause).__name__}: {detail}"
        super().__init__(f"block '{block_name}' ({block_type}): {detail}")


class EndOfStream(Exception):
    """Raised (or returned as the class) by a source's work() when it has no more data."""
