"""Mutation check of the fault explorer: plant known bugs, one at a time, and see each caught.

    make mutants                        # every mutant, then a table
    MUTANTS=get_404,reused_key .venv/bin/python scripts/mutants.py   # some of them

Each mutant is a handful of exact text replacements in the app's code. It is applied to a
throw-away copy of the tree (build/mutants/<name>), where the explorer runs on a small budget
(no shrinking: the first violation is enough), then, if the explorer found nothing, the tests
that guard the same behaviour. A mutant is killed when a run fails; the table says by which
check: the explorer's invariant, or the test. A replacement that does not match the code
exactly once stops the script: a mutant that silently applies nothing would read as killed.
Exit status 1 if any mutant survives.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutants"
EXAMPLES = os.environ.get("MUTANT_EXAMPLES", "100")
PYTHON = ROOT / ".venv" / "bin" / "python"
EXPLORER = "tests/explore/test_explorer.py"
FINDINGS = "tests/integration/test_findings.py"
CONTRACT = "tests/integration/test_contract.py"


@dataclass(frozen=True)
class Mutant:
    name: str
    behaviour: str
    #: (file, exact text, replacement) triples, applied in order.
    changes: tuple[tuple[str, str, str], ...]
    #: Tests run when the explorer does not kill it (pytest node ids or -k expressions).
    tests: tuple[str, ...] = ()
    #: False for a bug the explorer cannot see (telemetry): only `tests` run.
    explore: bool = True


MUTANTS = (
    Mutant("worker_never_runs", "the worker never runs a job",
           (("jobs/worker.py", "settings: Settings, clock: Clock) -> Outcome:\n"
             "    if message is None:\n        return Outcome.DROPPED\n    with log_context(",
             "settings: Settings, clock: Clock) -> Outcome:\n"
             "    if message is not None:\n        return Outcome.DROPPED\n    with log_context("
             ),)),
    Mutant("post_503", "every POST answers 503",
           (("function_app.py", "            submitted = submit(default_store(), body,",
             "            raise StorageUnavailable('planted')\n"
             "            submitted = submit(default_store(), body,"),)),
    Mutant("replay_never_queues", "a replay never queues the message",
           (("jobs/submission.py",
             "resend = key.message if found.record.status is JobStatus.ACCEPTED else None",
             "resend = None"),),
           (f"{FINDINGS}::test_f1_a_replay_whose_flush_failed_is_made_good_by_the_next_replay",)),
    Mutant("replay_queues_once", "a key's replays queue the message only the first time",
           (("jobs/submission.py",
             "resend = key.message if found.record.status is JobStatus.ACCEPTED else None",
             "resend = key.message if found.record.status is JobStatus.ACCEPTED "
             "and key.row not in _RESENT else None\n    _RESENT.add(key.row)"),
            ("jobs/submission.py", "MAX_ROUNDS = 5\n",
             "MAX_ROUNDS = 5\n_RESENT: set[str] = set()\n")),
           (f"{FINDINGS}::test_f1_a_replay_whose_flush_failed_is_made_good_by_the_next_replay",)),
    Mutant("timer_fails_every_job", "every timer run fails every job",
           (("jobs/retention.py", "    running_before = now - settings.abandon_after\n"
             "    accepted_before = now - MESSAGE_TIME_TO_LIVE",
             "    running_before = now + timedelta(days=3650)\n"
             "    accepted_before = now + timedelta(days=3650)"),
            ("jobs/retention.py", "        if not stalled:\n            return None",
             "        if record.status.terminal:\n            return None"))),
    Mutant("get_404", "GET answers 404 for a stored job",
           (("function_app.py", "    if found is None:\n        return error_response(*NOT_FOUND)\n"
             "    return record_response(found.record)",
             "    return error_response(*NOT_FOUND)"),)),
    Mutant("repeated_cancel_404", "a repeated cancel answers 404",
           (("jobs/cancellation.py", "        if record.status is JobStatus.CANCELLED:\n"
             "            return record",
             "        if record.status is JobStatus.CANCELLED:\n"
             "            raise JobNotFound(record.job_id)"),
            ("jobs/cancellation.py", "from jobs.models import JobRecord, JobStatus",
             "from jobs.errors import JobNotFound\nfrom jobs.models import JobRecord, JobStatus"))),
    Mutant("reused_key_replays", "a reused key with another body replays instead of 422",
           (("jobs/submission.py", "    if key.fingerprint != fresh.fingerprint:",
             "    if False:"),)),
    Mutant("race_loser_answers_own_job", "the loser of a key race answers with its own job",
           (("jobs/submission.py", "        store.discard(job.job_id)  # the key names another "
             "job: no client knows this one\n        return None",
             "        return Submitted(written.record, fresh.message)"),),
           ("tests/integration/test_contract.py::"
            "test_idempotency_racing_requests_create_exactly_one_job",
            f"{FINDINGS}::test_finding_1c_zero_retention_racing_submits_make_one_job")),
    Mutant("result_not_serialisable", "a stored result GET cannot serialise",
           (("jobs/worker.py", "        text = serial.dumps(result)",
             "        text = serial.json.dumps(result)"),
            ("jobs/store.py", 'entity["result"] = serial.dumps(record.result)',
             'entity["result"] = serial.json.dumps(record.result)'),
            ("function_app.py", "    except serial.NotStorable:\n"
             "        return serial.dumps(serial.answerable(view), max_depth=serial.MAX_DEPTH + 1)",
             "    except serial.NotStorable:\n        raise")),
           (f"{FINDINGS}::test_f2_a_result_no_answer_can_carry_fails_the_job_and_get_answers",)),
    Mutant("poison_fails_completed", "the poison handler fails a completed job",
           (("jobs/worker.py", "        if record.status.terminal:  # by our own write, if it was "
             "applied but answered 5xx\n            return record if record.error == error "
             "else None",
             "        if record.status is JobStatus.FAILED:\n            return record if "
             "record.error == error else None"),
            ("jobs/lifecycle.py", "    JobStatus.COMPLETED: frozenset(),",
             "    JobStatus.COMPLETED: frozenset({JobStatus.FAILED}),")),
           ("tests/integration/test_functions.py::"
            "test_poisoned_message_of_finished_job_changes_nothing",)),
    Mutant("late_delivery_overwrites", "a late delivery overwrites a terminal state",
           (("jobs/lifecycle.py", "    if record.status is JobStatus.ACCEPTED:\n"
             "        return True\n    owner = record.claim",
             "    if record.status is JobStatus.ACCEPTED or record.status.terminal:\n"
             "        return True\n    owner = record.claim"),
            ("jobs/lifecycle.py", "    JobStatus.COMPLETED: frozenset(),\n"
             "    JobStatus.FAILED: frozenset(),",
             "    JobStatus.COMPLETED: frozenset({JobStatus.RUNNING}),\n"
             "    JobStatus.FAILED: frozenset({JobStatus.RUNNING}),"))),
    Mutant("foreign_message_acts", "a message whose content is not its job's acts on the job",
           (("jobs/worker.py", "    if names_its_job(message):\n        return True",
             "    if True:\n        return True"),)),
    Mutant("location_names_another", "Location names another job than the body",
           (("function_app.py", 'headers = {"Location": status_url,',
             'headers = {"Location": job_url(base_url, record.correlation_id),'),)),
    Mutant("replay_stamps_nothing", "a replay queues an old accepted job's message unstamped",
           (("jobs/submission.py",
             "found = store.update(found.record.job_id, _stamp_queued(now), known=found)",
             "pass"),),
           (f"{CONTRACT}::test_sweep_gives_a_replayed_accepted_job_a_week_from_the_replay",)),
    Mutant("sweep_by_submit", "the sweep judges an accepted job by its submit alone",
           (("jobs/retention.py", "_queued_last(record) <= accepted_before",
             "record.submitted_at <= accepted_before"),),
           (f"{CONTRACT}::test_sweep_gives_a_replayed_accepted_job_a_week_from_the_replay",)),
    Mutant("sweep_ignores_progress", "the sweep fails a running job that just reported progress",
           (("jobs/retention.py", "    running_before = now - settings.abandon_after\n",
             "    running_before = now\n"),),
           (f"{FINDINGS}::test_f3_a_job_reporting_progress_within_the_smallest_window_is_never_swept",)),
    Mutant("status_url_after_write", "a request no status URL can be made for leaves a row",
           (("function_app.py", "    try:\n        # Before any write: a request no status URL "
             "can be made for leaves nothing stored.\n        base_url = settings.public_base_url "
             "or api_base_url(req.url)\n    except ValueError:",
             "    try:\n        default_store().insert(__import__('jobs.submission').submission"
             ".accepted_record(__import__('jobs.models').models.JobMessage(job_id=str("
             "__import__('uuid').uuid4()), job_type=body.job_type, customer_id=body.customer_id, "
             "payload=body.payload, submitted_at=clock(), correlation_id='c', token='t'), "
             "key_row=None))\n        base_url = settings.public_base_url "
             "or api_base_url(req.url)\n    except ValueError:"),),
           (f"{FINDINGS}::test_f4_a_request_no_status_url_can_be_made_for_is_400_and_stores_nothing",)),
)

TELEMETRY = "tests/integration/test_telemetry.py"
# What the telemetry promises: one trace per job across the queue, and the job metrics.
MUTANTS += (
    Mutant("worker_new_root", "each delivery starts a trace of its own instead of the job's",
           (("jobs/worker.py", "    parent, links = (invocation, []) if message is None else "
             "telemetry.joined(message, invocation)",
             "    parent, links = invocation, []"),),
           (f"{TELEMETRY}::test_telemetry_one_trace_from_post_across_the_queue_to_completion",),
           explore=False),
    Mutant("send_not_under_invocation", "the submit's span ignores the host's context",
           (("jobs/submission.py", "kind=SpanKind.PRODUCER, parent=invocation,",
             "kind=SpanKind.PRODUCER, parent=None,"),),
           (f"{TELEMETRY}::test_telemetry_one_trace_from_post_across_the_queue_to_completion",),
           explore=False),
    Mutant("handler_span_not_current", "the handler runs outside its job's span",
           (("jobs/worker.py", "                    result = _checked_result(handler("
             "self.message, self.report_progress))",
             "                    with trace.use_span(trace.INVALID_SPAN):\n"
             "                        result = _checked_result(handler(self.message, "
             "self.report_progress))"),),
           (f"{TELEMETRY}::test_telemetry_one_trace_from_post_across_the_queue_to_completion",),
           explore=False),
    Mutant("claim_writes_message_context", "the claim writes a message's trace context on the row",
           (("jobs/worker.py", "    accepted = replace(accepted_record(message, key_row=None), "
             'traceparent="", tracestate="")',
             "    accepted = accepted_record(message, key_row=None)"),),
           (f"{TELEMETRY}::test_telemetry_a_changed_traceparent_never_reaches_the_row",),
           explore=False),
    Mutant("joined_drops_link", "spans that join a job's trace lose the link to their invocation",
           (("jobs/telemetry.py", "    return stored, [invocation]", "    return stored, []"),),
           (f"{TELEMETRY}::test_telemetry_cancel_joins_the_job_trace_and_the_late_delivery_too",),
           explore=False),
    Mutant("replay_unlinked", "a replay's send span has no link to the job's trace",
           (("jobs/submission.py", "    if stored is not None:\n        span.add_link(",
             "    if stored is None:\n        span.add_link("),),
           (f"{TELEMETRY}::test_telemetry_idempotent_replay_sends_in_its_own_trace_linked_to_the_job",),
           explore=False),
    Mutant("poison_not_failed", "the poison span does not say the job failed",
           (("jobs/worker.py", "        telemetry.record_finished(final.record, span)\n"
             "        return Outcome.FAILED",
             "        telemetry.record_finished(final.record)\n        return Outcome.FAILED"),),
           (f"{TELEMETRY}::test_telemetry_poisoned_job_fails_in_its_trace",),
           explore=False),
    Mutant("sweep_outside_job_trace", "the sweep's span is not in the job's trace",
           (("jobs/retention.py", "    for found in store.stalled(running_before=running_before, "
             "accepted_before=accepted_before):\n        parent, links = "
             "telemetry.joined(found.record, invocation)",
             "    for found in store.stalled(running_before=running_before, "
             "accepted_before=accepted_before):\n        parent, links = invocation, []"),),
           (f"{TELEMETRY}::test_telemetry_sweep_and_purge_join_each_job_trace",),
           explore=False),
    Mutant("attempts_only_claims", "jobs.attempts counts only the deliveries that claimed",
           (("jobs/worker.py", "        telemetry.attempts.add(1, job_type)\n", ""),
            ("jobs/worker.py",
             '        log.info("job running", extra={"attempt": record.attempts})',
             '        telemetry.attempts.add(1, job_type)\n'
             '        log.info("job running", extra={"attempt": record.attempts})')),
           (f"{TELEMETRY}::test_telemetry_metrics_after_a_known_set_of_jobs",),
           explore=False),
    Mutant("oldest_age_any_status", "the oldest accepted age counts finished jobs too",
           (("jobs/store.py", """query = f"RowKey eq '{ROW_KEY}' and status eq """
             """'{JobStatus.ACCEPTED.value}'\"""", """query = f"RowKey eq '{ROW_KEY}'\""""),),
           (f"{TELEMETRY}::test_telemetry_metrics_after_a_known_set_of_jobs",),
           explore=False),
    Mutant("oldest_age_before_sweep", "the oldest accepted age counts jobs the sweep fails",
           (("jobs/retention.py", "    sweep_abandoned(store, settings=settings, now=now, "
             "invocation=invocation)\n    measure_oldest_accepted(store, now=now)",
             "    measure_oldest_accepted(store, now=now)\n    sweep_abandoned(store, "
             "settings=settings, now=now, invocation=invocation)"),),
           (f"{TELEMETRY}::test_telemetry_sweep_and_purge_join_each_job_trace",),
           explore=False),
    Mutant("tracestate_unbounded", "any tracestate goes into the message",
           (("jobs/telemetry.py", "tracestate if len(tracestate) <= MAX_TRACESTATE else \"\"",
             "tracestate"),),
           (f"{TELEMETRY}::test_telemetry_the_largest_body_with_any_trace_context_fits_a_queue_"
            "message",),
           explore=False),
    Mutant("old_rows_unread", "a row stored before trace context cannot be read",
           (("jobs/store.py", 'traceparent=entity.get("traceparent", ""),',
             'traceparent=entity["traceparent"],'),),
           (f"{TELEMETRY}::test_telemetry_rows_and_messages_from_before_trace_context_still_work",),
           explore=False),
)


def copy_tree(destination: Path) -> None:
    """The tree as `git` sees it (tracked and new files, not ignored ones), and node_modules."""
    if destination.exists():
        shutil.rmtree(destination)
    git = shutil.which("git") or "git"
    listed = subprocess.run([git, "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,  # noqa: S603
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not name.startswith("build/"):
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (destination / "node_modules").symlink_to(ROOT / "node_modules")


def apply(mutant: Mutant, tree: Path) -> None:
    for file, old, new in mutant.changes:
        path = tree / file
        text = path.read_text()
        if text.count(old) != 1:
            sys.exit(f"mutant {mutant.name}: {file} holds its text {text.count(old)} times, "
                     "not once: update the mutant to the code")
        path.write_text(text.replace(old, new))


def run(tree: Path, args: list[str], env: dict[str, str]) -> tuple[bool, str]:
    """Run pytest in the copy; (failed, output)."""
    command = [str(PYTHON), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *args]
    result = subprocess.run(command, cwd=tree, env=env, capture_output=True,  # noqa: S603
                            text=True, timeout=900)
    return result.returncode != 0, result.stdout + result.stderr


def killer(output: str) -> str:
    found = re.search(r"VIOLATED (\w+)", output)
    if found:
        return f"explorer: {found.group(1)}"
    failed = re.search(r"^FAILED (\S+)", output, re.MULTILINE)
    if failed and EXPLORER in failed.group(1):
        raised = re.search(r"^E\s+(\w+(?:Error|Exception)):", output, re.MULTILINE)
        return f"explorer: raised {raised.group(1) if raised else 'an error'}"
    if failed:
        return failed.group(1).split("::", 1)[-1]
    return "a failing run"


def main() -> int:
    chosen = set(filter(None, os.environ.get("MUTANTS", "").split(",")))
    mutants = [m for m in MUTANTS if not chosen or m.name in chosen]
    env = {**os.environ, "EXPLORE_EXAMPLES": EXAMPLES, "EXPLORE_NO_SHRINK": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("EXPLORE_PROFILE", None)
    rows = []
    started = time.monotonic()
    # The copy without a mutant must pass, or every "killed" below would mean nothing.
    baseline = WORK / "baseline"
    copy_tree(baseline)
    explorer = [EXPLORER] if any(m.explore for m in mutants) else []
    failed, output = run(baseline, [*explorer, *sorted({t for m in mutants for t in m.tests})],
                         env)
    if failed:
        (WORK / "baseline.log").write_text(output)
        sys.exit(f"the unmutated copy fails its checks: see {WORK / 'baseline.log'}")
    print(f"baseline (no mutant): passes, {time.monotonic() - started:.0f} s", flush=True)
    shutil.rmtree(baseline)
    for mutant in mutants:
        tree = WORK / mutant.name
        copy_tree(tree)
        apply(mutant, tree)
        began = time.monotonic()
        failed, output = run(tree, [EXPLORER], env) if mutant.explore else (False, "")
        if not failed and mutant.tests:
            failed, output = run(tree, list(mutant.tests), env)
        verdict = "killed" if failed else "SURVIVED"
        by = killer(output) if failed else "-"
        rows.append((mutant.name, mutant.behaviour, verdict, by, time.monotonic() - began))
        print(f"{mutant.name}: {verdict} ({by}) in {time.monotonic() - began:.0f} s",
              flush=True)
        (WORK / f"{mutant.name}.log").write_text(output)  # how it was killed, or why not
        shutil.rmtree(tree)
    print()
    print(f"mutation check ({len(rows)} mutants, explorer {EXAMPLES} examples each, "
          f"{time.monotonic() - started:.0f} s)")
    print("| mutant | planted bug | verdict | killed by | seconds |")
    print("|---|---|---|---|---|")
    for name, behaviour, verdict, by, seconds in rows:
        print(f"| {name} | {behaviour} | {verdict} | {by} | {seconds:.0f} |")
    return 0 if all(row[2] == "killed" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
