"""Plants the result cases of the corpus in a store: each recipe turned into the object a forger would write.

A result case's input is either raw bytes (`*.raw`, stored as they are) or a JSON recipe
(`*.json`) saying how its result differs from an honest one; all keys are optional:

- `signer`: "worker" (trusted, the default), "other" (a second trusted worker), "stranger"
  (an untrusted key) or null (no signature at all);
- `claim`: who holds the attempt's claim: "signer" (default), "other", "none", "wrong-token"
  (the signer, but the result names another token) or "deep-nesting" (the claim object is
  JSON nested 100,000 deep);
- `store_as`: "own" (default: results/<its job>/1.json, as workers before results were done
  receipts stored them), "receipt" (its signer's done receipt, as workers store results now),
  "next-attempt" (stored as attempt 1, accepted, and copied to results/<its job>/2.json) or a
  key template such as "results/{jid}/01.json" ({jid}, {JID}: the job id in lower or upper
  case; {signer}, {other}: the key id of the signer, of the other trusted worker);
- `copy_of`: the id of an earlier case whose stored bytes are copied here (a replay);
- `result`, `payload`: merged into the result row / the signed payload before signing
  ("$OTHER" stands for the other trusted worker's key id);
- `tamper`, `envelope`: merged into the result row / the envelope after signing;
- `log`: false to leave the log object out;
- `attestation`: "deep-nesting" to attach an attestation that is JSON nested 100,000 deep;
- `enrolment`: "deep-nesting" to write the signer's enrolment record as such JSON;
- `diffoscope_html`: the HTML diffoscope report stored beside the result's text report.

Every result is for its own job: a package-state row named after the case, so an accepted
result shows on that package's page and its marker (`marker <case id>` in the reason) can be
looked for on the site.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jobs.core.layout import build_prefix, claim_key, claim_notice_key, result_key, worker_key
from jobs.core.model import ArtifactResult, FileDigest, JobRow, PackageStateRow, Status, build_id, record_to_json
from jobs.core.queue import update_queue
from jobs.core.signing import generate_key, key_id, public_key_b64, sign_document
from jobs.core.store import Store
from jobs.publish.state.verify import PREVIOUS_RESULT_SCHEMA, RESULT_SCHEMA
from jobs.work.report import digest_of
from tests.publish.sitefix import NOW, put_gzip, state_row
from tests.publish.test_verify import INDEX_SHA, OTHER_SHA, claim, result_row

NESTED = b"[" * 100_000 + b"]" * 100_000  # nested past any recursion limit, 200 KB


@dataclass
class Keys:
    """The three signers a recipe can name."""

    worker: Any = field(default_factory=generate_key)
    other: Any = field(default_factory=generate_key)
    stranger: Any = field(default_factory=generate_key)

    def id(self, name: str) -> str:
        return key_id(getattr(self, name).public_key())

    def trusted(self) -> list[str]:
        """The `authorized_workers` entries: the worker and the other trusted worker."""
        return [public_key_b64(self.worker.public_key()), public_key_b64(self.other.public_key())]


@dataclass(frozen=True)
class Planted:
    """Where one case's result went and which build it would be if accepted."""

    key: str
    build_id: str | None  # None when the key names no build
    marker: str | None  # None for replays: the original's marker is rightly on the site


def row_for(case_id: str) -> PackageStateRow:
    """The package-state row of a result case's job."""
    return state_row(case_id, "1-1")


def record_file(digest: FileDigest) -> dict[str, Any]:
    return {"key": digest.key, "sha256": digest.sha256, "size": digest.size}


def queue_rows(store: Store, rows: list[PackageStateRow]) -> None:
    """Queue the job of each row at attempt 1, as sync would: the results are checked against these."""
    jobs = {r.job_id: JobRow(job_id=r.job_id, backend=r.backend, architecture=r.architecture, input_url=r.input_url,
                             distro=r.distro, releases=(r.release,), source_name=r.source_name,
                             source_version=r.source_version,
                             artifacts=(replace(r.artifact, sha256=r.artifact_sha256 or INDEX_SHA),), priority=1, queued_at=NOW,
                             not_before=None, attempt=1, retries=0) for r in rows}
    update_queue(store, lambda current: {**current, **jobs})


def _merge(target: dict[str, Any], changes: dict[str, Any], keys: Keys) -> None:
    for name, value in changes.items():
        target[name] = keys.id("other") if value == "$OTHER" else value


def plant(store: Store, keys: Keys, case_id: str, recipe_path: Path, planted: dict[str, Planted]) -> Planted:
    """Write one case's objects (claim, log, result) into `store`."""
    row = row_for(case_id)
    jid, marker = row.job_id, f"marker {case_id}"
    if recipe_path.suffix != ".json":
        key = result_key(jid, 1)
        store.put(key, recipe_path.read_bytes())
        return Planted(key, build_id(jid, 1), marker)
    recipe = json.loads(recipe_path.read_text())
    signer = recipe.get("signer", "worker")
    signer_id = keys.id(signer) if signer else keys.id("worker")
    holder = {"signer": signer_id, "wrong-token": signer_id, "other": keys.id("other")}.get(
        recipe.get("claim", "signer"))
    token = claim(store, jid, holder) if holder else "0" * 32
    if recipe.get("claim") == "deep-nesting":
        store.put(claim_key(jid, 1), NESTED)
    if recipe.get("claim") == "wrong-token":
        token = "f" * 32
    result = result_row(jid, signer_id, token, status=Status.BAD, reason=marker, distro=row.distro,
                        source_name=row.source_name, source_version=row.source_version,
                        artifacts=(ArtifactResult(row.artifact_name, Status.BAD, OTHER_SHA),))
    payload = {"schema": RESULT_SCHEMA, "result": record_to_json(result),
               "claim": {"token": token, "generation": 1, "queue": None}, "attestation": None}
    _merge(payload["result"], recipe.get("result", {}), keys)
    if "diffoscope_html" in recipe:  # a report next to the text one, where publish looks for it
        prefix = build_prefix(jid, 1, token)
        payload["result"]["diffoscope_key"] = put_gzip(store, f"{prefix}/diffoscope.txt", f"--- {case_id}\n")
        put_gzip(store, f"{prefix}/diffoscope.html", recipe["diffoscope_html"], "text/html; charset=utf-8")
    if recipe.get("enrolment") == "deep-nesting":
        store.put(worker_key(signer_id), NESTED, content_type="application/json")
    if recipe.get("attestation") == "deep-nesting":  # a file, as workers before results carried it
        payload["schema"] = PREVIOUS_RESULT_SCHEMA
        del payload["attestation"]
        payload["result"]["attestation_key"] = f"{build_prefix(jid, 1, token)}/attestation.json"
        store.put(payload["result"]["attestation_key"], NESTED, content_type="application/json")
    if recipe.get("log", True):
        store.put(f"{build_prefix(jid, 1, token)}/log", f"log of {case_id}\n".encode())
    if "files" not in recipe.get("result", {}):  # every file under the prefix, signed as a worker does
        prefix = build_prefix(jid, 1, token) + "/"
        payload["result"]["files"] = [record_file(digest_of(i.key, store.get(i.key).data))
                                      for i in store.list(prefix) if "/" not in i.key[len(prefix):]]
        if not recipe.get("log", True):  # signed, then deleted
            payload["result"]["files"].append(record_file(digest_of(f"{prefix}log", b"gone")))
    if recipe.get("result", {}).get("status") == "GOOD" and "artifacts" not in recipe.get("result", {}):
        payload["result"]["artifacts"] = [{"name": row.artifact_name, "status": "GOOD", "sha256": INDEX_SHA}]
    _merge(payload, recipe.get("payload", {}), keys)
    doc = sign_document(payload, getattr(keys, signer) if signer else keys.worker)
    if not signer:
        doc["signatures"] = []
    _merge(doc["signed"]["result"], recipe.get("tamper", {}), keys)
    _merge(doc, recipe.get("envelope", {}), keys)
    honest = json.dumps(doc).encode()
    if "copy_of" in recipe:  # a replay: another case's stored bytes, marker and all
        honest, marker = store.get(planted[recipe["copy_of"]].key).data, None
    store_as = recipe.get("store_as", "own")
    if store_as == "next-attempt":  # the old attempt's result is there too, accepted
        store.put(result_key(jid, 1), honest, content_type="application/json")
        key, bid, marker = result_key(jid, 2), build_id(jid, 2), None
    elif store_as == "own":
        key, bid = result_key(jid, 1), build_id(jid, 1)
    elif store_as == "receipt":
        key, bid = claim_notice_key(jid, 1, "done", signer_id), build_id(jid, 1)
    else:  # a key of its own making, e.g. "results/{jid}/01.json": names no build
        key, bid = store_as.format(jid=jid, JID=jid.upper(), signer=signer_id, other=keys.id("other")), None
    store.put(key, honest, content_type="application/json")
    return Planted(key, bid, marker)


__all__ = ["NESTED", "NOW", "Keys", "Planted", "plant", "queue_rows", "row_for"]
