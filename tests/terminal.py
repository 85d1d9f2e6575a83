"""Start a harness as from a terminal, where Ctrl-C sends SIGINT to its
process group."""
import signal
import subprocess


def _sigint_as_in_a_terminal():
    # A shell's background job (`nohup pytest ... &`, as CI may start the
    # suite) runs with SIGINT ignored, and a child inherits that: the
    # harness would never see the Ctrl-C these tests send it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_in_its_own_group(argv, **kwargs):
    """Popen ``argv`` in a process group of its own (which a test signals
    as a whole), SIGINT at its default whatever this process does with it."""
    return subprocess.Popen(argv, start_new_session=True, preexec_fn=_sigint_as_in_a_terminal, **kwargs)
