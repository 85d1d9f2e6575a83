"""The files ``--json FILE`` and ``--junit-xml FILE`` of parity run,
compare and grade (results_json.py, junit.py): checked before any work,
recorded by the command once its result is known, written (atomically)
when it ends, whatever its exit status: a usage error, a failed run or an
interrupt leaves a document that says so, not a missing file that a CI
step reports as "no test results".  ``-`` writes to the standard output,
the command's text then going to the standard error."""
from contextlib import nullcontext, redirect_stdout
import sys

from . import junit, results_json
from .plan import RunSpec
from .report import Summary
from .report_files import CampaignError, check_writable, write_atomic
from .sidecar import read_sidecar

STDOUT = "-"


class ResultFiles:
    def __init__(self, command, json_path=None, junit_path=None):
        self.command = command
        self.paths = {"json": json_path, "junit": junit_path}
        self.document = self.suites = None  # recorded by the command
        self.stdout = sys.stdout  # before the text goes aside

    @classmethod
    def of(cls, args):
        """The files a command's arguments ask for (none for the commands
        without the options)."""
        return cls(args.command.__name__.removesuffix("_command"), getattr(args, "json_out", None),
                   getattr(args, "junit_xml", None))

    def check(self):
        """CampaignError unless each file can be written: before any work.
        A file that cannot is dropped: the error goes to the other one."""
        if self.paths["json"] == self.paths["junit"] == STDOUT:
            self.paths["junit"] = None
            raise CampaignError("--json - and --junit-xml - would share the standard output: write one to a file")
        for key, option in (("json", "--json"), ("junit", "--junit-xml")):
            if self.paths[key] not in (None, STDOUT):
                try:
                    check_writable(self.paths[key], option)
                except CampaignError:
                    self.paths[key] = None
                    raise

    def text_aside(self):
        """While the command runs: its text on the standard error, if a
        result goes to the standard output."""
        aside = STDOUT in self.paths.values()
        return redirect_stdout(sys.stderr) if aside else nullcontext()

    # -- what the commands record ---------------------------------------------------
    def run(self, outcome, report, status, expect):
        if self.paths["json"]:
            self.document = results_json.run_document(outcome, report, status, expect)
        if self.paths["junit"]:
            spec = RunSpec.from_json(read_sidecar(report)["args"])  # --ops supported's ops written out
            self.suites = junit.run_suites(report, spec, outcome, expect)

    def compare(self, status, baseline, current, comparison, groups, rows, findings):
        """``rows``: the current report (a DataFrame)."""
        if self.paths["json"]:
            self.document = results_json.compare_document(status, baseline, current, comparison, groups,
                                                          Summary().add(rows), findings)
        if self.paths["junit"]:
            self.suites = junit.compare_suites(baseline, current, comparison, groups)

    def grade(self, status, grades, rubric, out, seconds):
        if self.paths["json"]:
            self.document = results_json.grade_document(status, grades, rubric, out, seconds)
        if self.paths["junit"]:
            self.suites = junit.grade_suites(grades, rubric)

    # -- at the end -----------------------------------------------------------------
    def write(self, status, reason):
        """Write what was recorded; where nothing was (the command stopped
        early), the exit status and ``reason``."""
        if self.paths["json"]:
            document = self.document if self.document is not None else results_json.document(
                self.command, status, reason)
            self._write(self.paths["json"], results_json.dumps(document))
        if self.paths["junit"]:
            suites = self.suites if self.suites is not None else junit.error_suites(self.command, status, reason)
            self._write(self.paths["junit"], junit.xml(suites))

    def _write(self, path, text):
        if path == STDOUT:
            self.stdout.write(text)
            self.stdout.flush()
        else:
            write_atomic(path, text)

