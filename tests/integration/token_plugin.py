"""An exec credential plugin for the tests, run as kubectl would run a cloud's plugin.

`token`: a ServiceAccount token (TokenRequest) bound to a Secret made for this run, so deleting
the Secret revokes it; `cert`: the admin's client certificate. Either says it expires after
$PLUGIN_VALID_S seconds. It finds the API server through KUBERNETES_EXEC_INFO
(provideClusterInfo), authenticates as admin with $PLUGIN_ADMIN_CERT/$PLUGIN_ADMIN_KEY, and
appends a line to $PLUGIN_RUNS per run.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import ssl
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any


def admin_request(cluster: dict[str, Any], method: str, path: str, body: Any) -> Any:
    with tempfile.NamedTemporaryFile() as ca:
        ca.write(base64.b64decode(cluster["certificate-authority-data"]))
        ca.flush()
        context = ssl.create_default_context(cafile=ca.name)
    context.load_cert_chain(os.environ["PLUGIN_ADMIN_CERT"], os.environ["PLUGIN_ADMIN_KEY"])
    request = urllib.request.Request(
        cluster["server"] + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        return json.loads(response.read())


def bound_token(cluster: dict[str, Any], run: int) -> str:
    namespace, account = os.environ["PLUGIN_NAMESPACE"], os.environ["PLUGIN_ACCOUNT"]
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"session-{run}"}}
    made = admin_request(cluster, "POST", f"/api/v1/namespaces/{namespace}/secrets", secret)
    bound = {"kind": "Secret", "apiVersion": "v1", "name": f"session-{run}"}
    spec = {"expirationSeconds": 600, "boundObjectRef": {**bound, "uid": made["metadata"]["uid"]}}
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token"
    review = admin_request(cluster, "POST", path, {"spec": spec})
    return str(review["status"]["token"])


def main() -> None:
    asked = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
    runs = Path(os.environ["PLUGIN_RUNS"])
    with runs.open("a") as log:
        log.write("run\n")
    run = len(runs.read_text().splitlines())
    valid = datetime.timedelta(seconds=float(os.environ["PLUGIN_VALID_S"]))
    expires = (datetime.datetime.now(datetime.UTC) + valid).strftime("%Y-%m-%dT%H:%M:%SZ")
    status: dict[str, str] = {"expirationTimestamp": expires}
    if sys.argv[1] == "token":
        status["token"] = bound_token(asked["spec"]["cluster"], run)
    else:
        status["clientCertificateData"] = Path(os.environ["PLUGIN_ADMIN_CERT"]).read_text()
        status["clientKeyData"] = Path(os.environ["PLUGIN_ADMIN_KEY"]).read_text()
    print(
        json.dumps({"apiVersion": asked["apiVersion"], "kind": "ExecCredential", "status": status})
    )


if __name__ == "__main__":
    main()
