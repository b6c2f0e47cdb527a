"""Why an attempt or a connection failed, in words for the journal and the user."""

from __future__ import annotations


def exited_well(ev: dict) -> bool:
    """Whether an exit event is a success as the task itself reports it: status 0, within
    its timeout, every declared output there (copying them back may still fail)."""
    return ev.get("rc") == 0 and not ev.get("timed_out") and not ev.get("missing_outputs")


def failure_reason(ev: dict, missing: list[str]) -> str:
    if ev.get("timed_out"):
        return "timed out (--timeout); its process group was killed"
    if ev.get("sig"):
        return f"killed by signal {ev['sig']}"
    if ev.get("rc") is None:
        return "exit status unknown"
    if ev["rc"] != 0:
        return f"exit status {ev['rc']}"
    return "declared outputs missing: " + ", ".join(missing)


def is_permanent(e: Exception) -> bool:
    """Errors that another try will not fix: a bad host key, refused credentials, an agent of
    another protocol version."""
    name = type(e).__name__
    return name in ("HostKeyError", "AuthenticationError", "ProtocolMismatch")


def describe_error(e: Exception) -> str:
    msg = str(e)
    if type(e).__name__ == "AuthenticationError":
        return "authentication failed (check user and identity file)"
    if type(e).__name__ in ("ConnectionRefusedError", "ConnectionError", "UnknownHostError"):
        return f"cannot connect ({msg.splitlines()[0] if msg else type(e).__name__})"
    return msg.splitlines()[0] if msg else type(e).__name__
