"""A clean terminal: TensorFlow's load-time C++ lines go to a log file, and an import error still shows."""

import os
import subprocess
import sys

import pytest

QUIET = "from pathlib import Path; from mtrank import terminal; terminal.import_tensorflow_quietly(Path({log!r}))"


def _python(code):
    # google.api_core's Python end-of-life FutureWarning is a Python warning: `mtrank` filters it (mtrank/cli.py)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "TF_USE_LEGACY_KERAS": "1", "PYTHONWARNINGS": "ignore::FutureWarning"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.integration
def test_tensorflows_load_lines_go_to_the_log_not_the_terminal(tmp_path):
    loud = _python("import tensorflow")
    if not loud.stderr.strip():
        pytest.skip("this TensorFlow build prints nothing while loading")
    log = tmp_path / "logs" / "tensorflow-load.log"
    quiet = _python(QUIET.format(log=str(log)) + "; import sys; print('stderr still works', file=sys.stderr)")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.strip() == "stderr still works"
    assert loud.stderr.strip().splitlines()[0][-60:] in log.read_text()


def test_a_failed_import_still_raises_on_the_terminal(tmp_path):
    log = tmp_path / "tensorflow-load.log"
    broken = tmp_path / "site"
    (broken / "tensorflow").mkdir(parents=True)
    (broken / "tensorflow" / "__init__.py").write_text("raise ImportError('this tensorflow is broken')\n")
    code = f"import sys; sys.path.insert(0, {str(broken)!r}); " + QUIET.format(log=str(log))
    out = _python(code)
    assert out.returncode != 0 and "this tensorflow is broken" in out.stderr


def test_during_a_run_native_lines_go_to_the_log_and_the_terminal_comes_back(tmp_path):
    """What a C++ runtime, Python's stderr or a child process writes to descriptor 2 lands in the run's log;
    afterwards the terminal is back, for the message a refusal prints."""
    log = tmp_path / "run.log"
    code = ("import os, sys, subprocess; from pathlib import Path; from mtrank import terminal\n"
            f"with terminal.native_stderr_to(Path({str(log)!r})):\n"
            "    os.write(2, b'native line\\n')\n"
            "    subprocess.run([sys.executable, '-c', 'import sys; sys.stderr.write(\"child line\\\\n\")'])\n"
            "    print('a warning of a library', file=sys.stderr)\n"
            "print('our message', file=sys.stderr)\n")
    out = _python(code)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == ["our message"]
    assert log.read_text().splitlines() == ["native line", "child line", "a warning of a library"]


def _progress(tty):
    import io
    import logging

    from pipeline import local_runner

    stream = io.StringIO()
    stream.isatty = lambda: tty
    handler = local_runner._ComponentProgress(stream)
    for message in ("Component Transform is running.", "Component Transform is finished.",
                    "Component Trainer is running.", "Epoch 1/2: loss 0.5000, val_loss 0.6000",
                    "an unrelated INFO line", "Epoch 2/2: loss 0.4000, val_loss 0.5000",
                    "Component Trainer is finished."):
        handler.emit(logging.LogRecord("absl", logging.INFO, __file__, 0, message, None, None))
    return stream.getvalue()


def test_one_line_per_component_on_a_terminal_every_line_in_a_pipe():
    shown = _progress(tty=True)
    lines = shown.split("\n")
    assert len(lines) == 3 and lines[2] == ""  # two components, two lines: each written over in place
    assert lines[1].split("\r")[-1].startswith("[pipeline] Trainer") and "finished in" in lines[1].split("\r")[-1]
    assert "running: epoch 2/2: loss 0.4000, val_loss 0.5000" in lines[1]
    piped = _progress(tty=False).splitlines()
    assert len(piped) == 6 and piped[3].endswith("running: epoch 1/2: loss 0.5000, val_loss 0.6000")
