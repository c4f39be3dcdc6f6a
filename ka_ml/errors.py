"""Domain errors. Each carries what went wrong and what to do about it.

The CLI turns any :class:`KaMlError` into a one-paragraph message and a non-zero exit
(traceback only with ``--debug``). Code below the CLI raises; it never prints-then-raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


class KaMlError(Exception):
    """Base class: a problem the user can fix, with the remedy."""

    exit_code = 2

    def __init__(self, message: str, remedy: str = "") -> None:
        self.message = message
        self.remedy = remedy
        super().__init__(self.render())

    def render(self) -> str:
        return f"{self.message} Fix: {self.remedy}" if self.remedy else self.message


class ConfigError(KaMlError):
    """The configuration file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class DataIssue:
    """One finding about the input data: where, what, examples, and what to do."""

    table: str
    column: str | None
    problem: str
    remedy: str
    examples: Sequence[str] = field(default_factory=tuple)
    n_rows: int = 0
    level: str = "error"  # "error" or "warning"
    # the source's own names where data.tables / data.columns map them (a CRM's
    # 'order_lines' and 'customer_no' for the contract's orders.account_id)
    source_table: str | None = None
    source_column: str | None = None

    def render(self) -> str:
        table = f"table '{self.table}'" + (
            f" ('{self.source_table}' in your data)" if self.source_table else ""
        )
        column = f", column '{self.column}'" if self.column else ""
        if self.column and self.source_column:
            column += f" ('{self.source_column}' in your data)"
        where = table + column
        rows = f" ({self.n_rows} rows)" if self.n_rows else ""
        ex = f" Examples: {'; '.join(self.examples[:5])}." if self.examples else ""
        return f"{where}: {self.problem}{rows}.{ex} Fix: {self.remedy}"


class DataValidationError(KaMlError):
    """The input data breaks the contract. Holds every error found, not just the first."""

    def __init__(self, issues: Sequence[DataIssue]) -> None:
        self.issues = list(issues)
        body = " | ".join(i.render() for i in self.issues)
        n = len(self.issues)
        super().__init__(f"The input data has {n} error{'s' if n != 1 else ''}: {body}")


class NoChampionError(KaMlError):
    """No model carries the champion alias in the registry."""


class ModelError(KaMlError):
    """Training or scoring cannot proceed with these data/models."""


# -- interruptions --------------------------------------------------------------------
# The signals (Ctrl-C, SIGTERM) a command received while it ran. A library can turn one
# into an error of its own: Spark cancels its jobs on Ctrl-C and py4j then fails with
# "Broken pipe", which a user's scheduler saw as "unexpected error", exit 1. The CLI reads
# this to report such a failure as the interruption it was (exit 130 / 143).
SIGNALS_RECEIVED: list[int] = []


def note_signal(signum: int) -> None:
    """Record that ``signum`` arrived during the current command."""
    SIGNALS_RECEIVED.append(int(signum))


class Terminated(KeyboardInterrupt):
    """A command stopped by a signal (SIGTERM): a KeyboardInterrupt, so the same clean-up
    runs, that exits 128 + the signal's number as the shell's convention has it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


def stop_if_signalled() -> None:
    """Raise the interruption a signal asked for, if one arrived and was lost on the way.

    The SIGTERM handler raises where Python happens to run: inside a garbage collector's
    weakref callback the exception is printed and dropped ("Exception ignored in ..."), and
    a user's score run then sent every digest and exited 0 (2 of ~110 kills). Called before
    each step that cannot be undone (publishing, the write-back, each e-mail)."""
    if SIGNALS_RECEIVED:
        signum = SIGNALS_RECEIVED[0]
        raise KeyboardInterrupt("Ctrl-C") if signum == 2 else Terminated(signum)


@contextmanager
def signals_held(what: str) -> Iterator[None]:
    """Ctrl-C and SIGTERM wait for the block to end, then stop the command as they would
    have: for writes a database must finish or roll back in one piece. A user's Ctrl-C while
    `train` registered its models cut an SQLite insert short; its open transaction held the
    database, marking the run failed waited 20 s and gave "database is locked", exit 1, the
    run left RUNNING. Outside the main thread (no signal handlers there) the block just runs.
    """
    import logging
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: object) -> None:
        if not held:
            logging.getLogger("ka_ml").warning(
                "%s: finishing %s first (a few seconds), then stopping",
                "Ctrl-C" if signum == signal.SIGINT else f"signal {signum}",
                what,
            )
        held.append(signum)

    previous = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if held:
        raise KeyboardInterrupt("Ctrl-C") if held[0] == signal.SIGINT else Terminated(held[0])
