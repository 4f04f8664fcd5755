"""Results as workers before results were done receipts stored them (publish still accepts them).

Such a worker wrote the same signed `rebuilder.result/2` document to
`results/<job-id>/<attempt>.json` (create-only) and then a separate signed done receipt
(`rebuilder.claim-done/1`, naming its claim token) at `claims/<job-id>/<attempt>.done/<key id>.json`,
where a worker now stores the result itself. `to_previous_format` turns a result the current
worker stored into exactly that pair, as a deployment whose workers were not upgraded yet has.
"""

from __future__ import annotations

import json
import time

from jobs.core.layout import claim_notice_key, result_key
from jobs.core.signing import sign_document
from jobs.work.claim import DONE_SCHEMA
from jobs.work.identity import WorkerIdentity


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
