"""Results as earlier workers stored them (publish still accepts them).

`to_previous_format`: workers before results were done receipts.

Such a worker wrote the same signed `rebuilder.result/2` document to
`results/<job-id>/<attempt>.json` (create-only) and then a separate signed done receipt
(`rebuilder.claim-done/1`, naming its claim token) at `claims/<job-id>/<attempt>.done/<key id>.json`,
where a worker now stores the result itself. `to_previous_format` turns a result the current
worker stored into exactly that pair, as a deployment whose workers were not upgraded yet has.
"""

from __future__ import annotations

import json
import time

from jobs.core.layout import build_prefix, claim_notice_key, result_key
from jobs.core.signing import sign_document
from jobs.publish.state.verify import PREVIOUS_RESULT_SCHEMA
from jobs.work.claim import DONE_SCHEMA
from jobs.work.identity import WorkerIdentity
from jobs.work.report import digest_of


def to_previous_format(store, identity: WorkerIdentity, job_id: str, attempt: int = 1) -> str:
    """Move `identity`'s stored result of the attempt to `results/` and put the receipt in its place; the result's key."""
    receipt = claim_notice_key(job_id, attempt, "done", identity.key_id)
    doc = json.loads(store.get(receipt).data)
    key = result_key(job_id, attempt)
    store.put_if_absent(key, json.dumps(doc, sort_keys=True).encode(), content_type="application/json")
    payload = {"schema": DONE_SCHEMA, "job_id": job_id, "attempt": attempt,
               "token": doc["signed"]["claim"]["token"], "noticed_at": int(time.time())}
    store.put(receipt, json.dumps(sign_document(payload, identity.key), sort_keys=True).encode(),
              content_type="application/json")
    return key


def to_separate_attestation(store, identity: WorkerIdentity, job_id: str, attempt: int = 1) -> str | None:
    """Turn `identity`'s stored result of the attempt into one of a worker before results carried
    their attestation: `rebuilder.result/2`, the attestation uploaded as `attestation.json` under
    the claim's prefix, named by `attestation_key` and signed in `files`. The file's key (None: no attestation)."""
    receipt = claim_notice_key(job_id, attempt, "done", identity.key_id)
    payload = json.loads(store.get(receipt).data)["signed"]
    link = payload.pop("attestation")
    payload["schema"] = PREVIOUS_RESULT_SCHEMA
    key = None
    if link is not None:
        key = f"{build_prefix(job_id, attempt, payload['claim']['token'])}/attestation.json"
        data = json.dumps(link, sort_keys=True).encode()  # as those workers wrote it
        store.put(key, data, content_type="application/json")
        digest = digest_of(key, data)
        payload["result"]["attestation_key"] = key
        payload["result"]["files"].append({"key": key, "sha256": digest.sha256, "size": digest.size})
    store.put(receipt, json.dumps(sign_document(payload, identity.key), sort_keys=True).encode(),
              content_type="application/json")
    return key
