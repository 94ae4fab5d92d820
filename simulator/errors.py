"""The operator CLI's one error family and its exit codes.

Commands raise a :class:`SentinelCliError` subclass for anything the operator can fix (a wrong option, a missing
file, no AWS region or credentials, a table that does not exist). The CLI group (``simulator.cli``) turns it into one
line on stderr and the subclass's exit code, in one place; no user error ever prints a traceback. Exceptions from
boto/botocore that reach the group unconverted are translated by :func:`from_aws` first, so a command does not have
to wrap every AWS call to get a clear message. Anything else is a bug and keeps its traceback.

Exit codes (documented here, nowhere else):

====  =========================================================================================
1     the operation ran and failed (some records not delivered, an AWS call refused)
2     usage or configuration: a bad option value, a preset that does not fit, no region configured
3     AWS access: no credentials, credentials refused, access denied
4     not found: an input file, an anomaly table, a stream, an anomaly group
130   interrupted (Ctrl-C), the shell convention 128 + SIGINT
====  =========================================================================================
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

EXIT_FAILED = 1
EXIT_USAGE = 2  # the code click itself uses for usage errors, so ours and click's agree
EXIT_AWS_ACCESS = 3
EXIT_NOT_FOUND = 4
EXIT_INTERRUPTED = 130

# ClientError codes that mean "you may not" / "who are you", not "it failed"; the rest of AWS's codes are failures.
_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "UnauthorizedOperation",
    }
)
_NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "NoSuchBucket", "NoSuchKey", "NotFoundException"})


class SentinelCliError(Exception):
    """An error the operator can act on: printed as ``error: <message>`` and exits with :attr:`exit_code`."""

    exit_code: ClassVar[int] = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())  # one line, whatever the wrapped exception's text looked like


class OperationError(SentinelCliError):
    """The command ran and could not do (all of) its job."""

    exit_code = EXIT_FAILED


class UsageError(SentinelCliError):
    """A bad option value or configuration (including no AWS region)."""

    exit_code = EXIT_USAGE


class AwsAccessError(SentinelCliError):
    """No AWS credentials, or AWS refused them."""

    exit_code = EXIT_AWS_ACCESS


class NotFoundError(SentinelCliError):
    """A named thing (file, table, stream, group) does not exist."""

    exit_code = EXIT_NOT_FOUND


class InterruptError(SentinelCliError):
    """Ctrl-C: the command stopped and said what it had done."""

    exit_code = EXIT_INTERRUPTED


def aws_error_code(exc: BaseException) -> str | None:
    """The ``Error.Code`` of a botocore ``ClientError`` (duck-typed: botocore need not be imported here)."""
    response: Any = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code else None


def from_aws(exc: BaseException) -> SentinelCliError | None:
    """The domain error for a boto3/botocore exception, or None when ``exc`` is not one.

    Checked by module name first, so that a CLI that never touched AWS never imports botocore to find out.
    """
    if not type(exc).__module__.startswith(("botocore", "boto3")) or "botocore.exceptions" not in sys.modules:
        return None
    from botocore import exceptions as bx

    if isinstance(exc, bx.NoRegionError):
        return UsageError("no AWS region: pass --region or set AWS_REGION (e.g. eu-west-1)")
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return AwsAccessError(
            "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or run 'aws configure'"
        )
    if isinstance(exc, bx.EndpointConnectionError):
        return OperationError(f"cannot reach AWS: {exc}")
    if isinstance(exc, bx.ClientError):
        code = aws_error_code(exc) or "?"
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code in _NOT_FOUND_CODES:
            return NotFoundError(f"{code}: {message}")
        if code in _ACCESS_CODES:
            return AwsAccessError(f"AWS refused the request ({code}): {message}")
        return OperationError(f"AWS error {code}: {message}")
    if isinstance(exc, bx.BotoCoreError):
        return OperationError(str(exc))
    return None


def as_cli_error(exc: BaseException) -> SentinelCliError | None:
    """The domain error ``exc`` stands for, or None for a bug (which keeps its traceback)."""
    if isinstance(exc, SentinelCliError):
        return exc
    return from_aws(exc)
