"""The terminal of `train.py` and `eval.py`: the run's own output, not TensorFlow's start-up lines.

TensorFlow writes native (C++) log lines straight to file descriptor 2 while its libraries load
and while it looks for devices: `WARNING: All log messages before absl::InitializeLog() is called
are written to STDERR`, `I0000 ... oneDNN custom operations are on`, `E0000 ... failed call to
cuInit`, the CPU-feature notice. `TF_CPP_MIN_LOG_LEVEL` does not stop all of them (absl prints the
first one itself, before any level applies), so the entry points import TensorFlow and discover
devices with descriptor 2 pointed at `/dev/null`, and set `TF_CPP_MIN_LOG_LEVEL=2` for the rest of
the run. `--verbosity=N` (any value) or `TF_CPP_MIN_LOG_LEVEL=0` in the environment shows them
again. A Python error raised by the import is still printed: the descriptor is restored first.

TensorFlow-free: import this before TensorFlow.
"""

import contextlib
import os
import sys

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
QUIET_LOG_LEVEL = "2"  # Errors only, for what TensorFlow logs after start-up.


def quiet_by_default():
    """Sets `TF_CPP_MIN_LOG_LEVEL=2` unless the user set it (call before importing TensorFlow)."""
    os.environ.setdefault(LOG_LEVEL_VARIABLE, QUIET_LOG_LEVEL)


def native_logs_requested(verbosity_given=False):
    """Whether the user asked to see TensorFlow's native start-up lines.

    Args:
        verbosity_given: bool, whether `--verbosity` was on the command line.

    Returns:
        bool.
    """
    return verbosity_given or os.environ.get(LOG_LEVEL_VARIABLE) == "0"


@contextlib.contextmanager
def native_stderr_silenced():
    """Points file descriptor 2 at `/dev/null` for the block (Python's `sys.stderr` included)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow(show_native_logs=False):
    """Imports TensorFlow and lists its devices, hiding the native lines that this prints.

    Args:
        show_native_logs: bool, leave descriptor 2 alone (`native_logs_requested()`).

    Returns:
        The `tensorflow` module.
    """
    context = contextlib.nullcontext() if show_native_logs else native_stderr_silenced()
    with context:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        # Device discovery logs too (cuInit on machines without a GPU): do it now, while quiet.
        # Listing physical devices does not start the runtime, so logical-device and
        # multi-worker set-up done later still applies.
        tf.config.list_physical_devices()
    return tf


# What a user's input can make the library raise: each becomes one line naming the problem.
USER_ERRORS = (ValueError, TypeError, OSError, ArithmeticError, RuntimeError)
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, as shells report Ctrl-C.


def one_line(text):
    """`text` with its lines joined by spaces (an error message for a terminal line)."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def run_reporting_errors(program, function, *, show_tracebacks=False):
    """Calls `function()`; a failure exits with one line instead of a traceback.

    Errors of `USER_ERRORS` print `PROGRAM: message` (the library's messages say what was
    expected and what was received); Ctrl-C prints its message and exits with 130; anything else
    is unexpected and prints its type and first line, with how to see the traceback.

    Args:
        program: str, the name that starts each line ("train.py").
        function: the work, a function of no arguments.
        show_tracebacks: bool, let every error propagate (`--verbosity` given).

    Returns:
        What `function` returns.
    """
    if show_tracebacks:
        return function()
    try:
        return function()
    except KeyboardInterrupt as error:
        print(f"{program}: {one_line(error) or 'Interrupted; the same command starts again from the last checkpoint.'}",
              file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT_CODE)
    except USER_ERRORS as error:
        sys.exit(f"{program}: {one_line(error) or type(error).__name__}")
    except Exception as error:  # pylint: disable=broad-except  # Unexpected: still one line.
        first = next((line for line in str(error).splitlines() if line.strip()), "")
        sys.exit(f"{program}: unexpected {type(error).__name__}: {first.strip()} "
                 "(--verbosity=0 shows the traceback)")
