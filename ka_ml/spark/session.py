"""A SparkSession the engine can rely on, or a clear error when Spark cannot run here.

Why the settings: Arrow carries the pandas frames of the grouped kernels; the session
time zone is UTC so that time-zone-aware source dates become the same calendar days as
in the local loader; ``OMP_WAIT_POLICY=PASSIVE`` reaches the executors' Python workers
before LightGBM is imported (stack notes). A session we start in local mode binds to
127.0.0.1 with the UI off (CI machines, laptops).

Under ``spark-submit`` or on a managed platform (Databricks, EMR, Dataproc) the session
already exists or the master comes from the submit command: it is reused as it is,
apart from the two runtime settings above.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import sys
import threading
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ka_ml.errors import KaMlError, note_signal

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ENGINES = ("local", "spark")
MASTER_VARIABLE = "KA_ML_SPARK_MASTER"  # e.g. local[4], spark://host:7077, yarn

RUNTIME_CONF = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
}
START_CONF = {
    "spark.executorEnv.OMP_WAIT_POLICY": "PASSIVE",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
}
LOCAL_BUCKETS_PER_CORE = 4  # local[*]: account buckets per core, not Spark's 200


def _cores() -> int:
    return os.cpu_count() or 2


LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


# local[*]: the driver JVM's heap when the user sets none (Spark's own default is 1 GiB, in
# which a user's 25,000-account training snapshots died): this share of the machine's
# memory, within these bounds (the Python workers and the training itself need the rest)
LOCAL_DRIVER_MEMORY_SHARE = 0.25
LOCAL_DRIVER_MEMORY_GIB = (1, 32)


def local_driver_memory(total_bytes: int | None = None) -> str:
    """``spark.driver.memory`` for a local master: a quarter of the machine's memory, 1-32 GiB."""
    if total_bytes is None:
        try:
            total_bytes = int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            total_bytes = 4 * 2**30
    low, high = LOCAL_DRIVER_MEMORY_GIB
    gib = int(total_bytes * LOCAL_DRIVER_MEMORY_SHARE // 2**30)
    return f"{min(max(gib, low), high)}g"


def out_of_memory(error: BaseException) -> KaMlError | None:
    """A Java heap exhausted in Spark (a py4j error whose text names the JVM's
    OutOfMemoryError) as the error a user can act on, else None."""
    if "java.lang.OutOfMemoryError" not in str(error):
        return None
    return KaMlError(
        "Spark ran out of memory (java.lang.OutOfMemoryError: the driver's or an executor's "
        "Java heap).",
        'give Spark more memory: PYSPARK_SUBMIT_ARGS="--driver-memory 8g pyspark-shell" '
        "before ka-ml (a local master runs everything in the driver); on a cluster "
        "spark-submit --driver-memory / --executor-memory; or fewer snapshots for train "
        "(features.max_snapshots).",
    )


_MISMATCH = re.compile(
    r"reading file (?P<file>\S+?)\.? Data type mismatches when reading Parquet column "
    r"\[?(?P<column>[^\].]*)\]?\. Expected Spark type (?P<want>\w+), actual Parquet type "
    r"(?P<got>\w+)",
    re.S,
)


def unreadable_part(error: BaseException) -> KaMlError | None:
    """Spark's failure to read a lake's part file whose column has another type than the
    table's (a re-exported month with its amounts as text) as the loader's kind of error:
    the file, the column, both types, the fix; else None. It surfaces when the rows are
    read, as a py4j error ("unexpected error", exit 1, with the column's name lost)."""
    match = _MISMATCH.search(str(error))
    if match is None:
        return None
    part = match["file"].removeprefix("file://")
    return KaMlError(
        f"Spark could not read '{part}': its column '{match['column'] or '?'}' is "
        f"{match['got']} there and {match['want']} in the table's other parts.",
        "write every part of the table with the same column types (re-export that file, or "
        "cast the column in the export); `ka-ml validate` with the local engine names every "
        "part that differs.",
    )


def check_engine(engine: str) -> str:
    """The engine name, or a KaMlError naming the allowed ones."""
    if engine not in ENGINES:
        raise KaMlError(f"--engine '{engine}' is not known.", f"use one of {', '.join(ENGINES)}.")
    return engine


def require_spark() -> None:
    """Fail with the remedy when pyspark or a Java runtime is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError as e:
        raise KaMlError(
            "The Spark engine needs pyspark, which is not installed.",
            "install ka_ml's spark extra: in a clone `make install` does; elsewhere pip install "
            "'<the clone or its wheel>[spark]' (ka_ml is not on PyPI); or run with --engine local.",
        ) from e
    if _submitted():
        return
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and os.path.exists(os.path.join(java_home, "bin", "java"))) and not (
        shutil.which("java")
    ):
        raise KaMlError(
            "The Spark engine needs a Java runtime (17 or newer) and none was found.",
            "install one (Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless) or set "
            "JAVA_HOME to it.",
        )


def _submitted() -> bool:
    """True inside spark-submit / pyspark / a platform that launched the JVM for us."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def spark_session(master: str | None = None, conf: Mapping[str, str] | None = None) -> SparkSession:
    """The running SparkSession, or a new one (``local[*]`` unless told otherwise).

    ``master`` (or the ``KA_ML_SPARK_MASTER`` variable) only matters when no session runs
    yet and Spark was not launched by spark-submit.
    """
    require_spark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is None:
        master = master or os.environ.get(MASTER_VARIABLE)
        if master is None and not _submitted():
            master = "local[*]"
        builder = SparkSession.builder.appName("ka_ml")
        settings = {**START_CONF, **RUNTIME_CONF}
        if master is not None:
            builder = builder.master(master)
            if master.startswith("local"):
                settings.update(LOCAL_CONF)
                # account buckets (one task each): Spark's default 200 cost a user's demo run
                # 2 min 8 s against 55-70 s with 4, on 2 cores; a user's own setting wins
                submit_args = os.environ.get("PYSPARK_SUBMIT_ARGS", "")
                if "spark.sql.shuffle.partitions" not in submit_args:
                    settings["spark.sql.shuffle.partitions"] = str(
                        LOCAL_BUCKETS_PER_CORE * _cores()
                    )
                if not any(k in submit_args for k in ("--driver-memory", "spark.driver.memory")):
                    settings["spark.driver.memory"] = local_driver_memory()
                os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
                os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        settings.update(conf or {})
        for key, value in settings.items():
            builder = builder.config(key, value)
        try:
            active = builder.getOrCreate()
        except Exception as e:  # a Java trace named neither the variable nor the fix
            raise KaMlError(
                f"Spark did not start with master '{master or 'spark-submit default'}' "
                f"({MASTER_VARIABLE}): {str(e).strip().splitlines()[0][:300]}",
                f"check {MASTER_VARIABLE} (local[*], local[4], spark://host:7077, yarn) and "
                "that the master is reachable; or unset it for local[*].",
            ) from e
        active.sparkContext.setLogLevel("ERROR")  # our own errors say what to do
    # pyspark 4.3 warns on every pandas conversion that pandas 3 is "not yet fully
    # supported"; the parity tests are the check that matters here
    warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
    for key, value in RUNTIME_CONF.items():
        active.conf.set(key, value)
    _note_interrupts()
    # py4j logs "Closing down clientserver connection" at INFO through our handler at the
    # end of every run: noise in a user's console
    logging.getLogger("py4j").setLevel(logging.WARNING)
    return active


def _note_interrupts() -> None:
    """Wrap PySpark's Ctrl-C handler (it cancels the running jobs, which py4j then reports
    as an error of its own) so the CLI knows the failure was the interruption."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGINT)
    if getattr(previous, "_ka_ml_notes", False):
        return

    def on_interrupt(signum: int, frame: Any) -> None:
        if previous == signal.SIG_IGN:
            return
        note_signal(signum)
        if callable(previous):
            previous(signum, frame)  # PySpark's: cancels the jobs, raises KeyboardInterrupt
        raise KeyboardInterrupt

    on_interrupt._ka_ml_notes = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGINT, on_interrupt)
