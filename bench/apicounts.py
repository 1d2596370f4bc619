"""API requests by verb and resource, from the API server's `apiserver_request_total`."""

from __future__ import annotations

import re
from collections import Counter

_LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
Key = tuple[str, str, str]  # verb, resource[/subresource], code


def parse(text: str) -> Counter[Key]:
    counts: Counter[Key] = Counter()
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        if labels.get("group"):
            resource = f"{resource}.{labels['group']}"
        key = (labels.get("verb", ""), resource, labels.get("code", ""))
        counts[key] += round(float(match["value"]))
    return counts


def delta(before: Counter[Key], after: Counter[Key]) -> dict[str, int]:
    """Requests made between two scrapes, as "VERB resource code" → count, largest first."""
    diff = {key: after[key] - before.get(key, 0) for key in after}
    kept = sorted(((n, key) for key, n in diff.items() if n > 0), reverse=True)
    return {" ".join(key): n for n, key in kept}
