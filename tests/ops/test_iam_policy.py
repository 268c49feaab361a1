"""deploy/iam-policy.json grants every S3 action the node's code calls (every boto3
operation in edge/replication/objects.py) and Litestream's documented needs, scoped to
the bucket and the site's prefix, and nothing broader."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POLICY = json.loads((ROOT / "deploy" / "iam-policy.json").read_text())
CODE = (ROOT / "edge" / "replication" / "objects.py").read_text()

# boto3 operation -> the IAM action that authorises it.
ACTION_OF = {
    "get_object": "s3:GetObject",
    "head_object": "s3:GetObject",
    "put_object": "s3:PutObject",
    "list_objects_v2": "s3:ListBucket",
    "head_bucket": "s3:ListBucket",
    "delete_objects": "s3:DeleteObject",
}
# Litestream 0.5's S3 replica client: lists, reads, uploads (multipart for large
# files, aborted on failure), deletes (retention), and asks the bucket's region.
LITESTREAM = {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
              "s3:AbortMultipartUpload", "s3:GetBucketLocation"}
BUCKET_LEVEL = {"s3:ListBucket", "s3:GetBucketLocation"}


def granted() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for st in POLICY["Statement"]:
        assert st["Effect"] == "Allow"
        actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        for a in actions:
            assert "*" not in a, f"{a}: name actions, no wildcards"
            out.setdefault(a, set()).update(resources)
    return out


def test_every_boto_call_in_the_code_is_mapped_and_granted() -> None:
    calls = set(re.findall(r'_call\(\s*"(\w+)"', CODE))
    assert {"get_object", "put_object", "list_objects_v2"} <= calls  # the regex still sees them
    unmapped = calls - set(ACTION_OF)
    assert not unmapped, f"new S3 calls in objects.py: map them to IAM actions: {unmapped}"
    # no other way of reaching boto3 in the module
    assert not re.search(r"\._s3\(\)\.(?!meta)\w+\(", CODE.replace("_call", ""))
    missing = {ACTION_OF[c] for c in calls} - set(granted())
    assert not missing, f"deploy/iam-policy.json lacks {missing}"


def test_litestream_needs_are_granted_and_nothing_more() -> None:
    needed = LITESTREAM | set(ACTION_OF.values())
    assert set(granted()) == needed


def test_resources_are_scoped_to_the_prefix() -> None:
    for action, resources in granted().items():
        if action in BUCKET_LEVEL:
            assert resources == {"arn:aws:s3:::BUCKET"}, action
        else:
            assert resources == {"arn:aws:s3:::BUCKET/PREFIX/*"}, action
    listing = [st for st in POLICY["Statement"] if "s3:ListBucket" in st["Action"]]
    assert listing[0]["Condition"]["StringLike"]["s3:prefix"] == ["PREFIX", "PREFIX/*"]


def test_the_deploy_docs_cover_the_bucket() -> None:
    text = (ROOT / "deploy" / "README.md").read_text()
    for needle in ("If-None-Match", "If-Match", "iam-policy.json", "AWS_REGION",
                   "AWS_DEFAULT_REGION"):
        assert needle in text, needle
    for action in granted():
        assert action in text, f"deploy/README.md does not explain {action}"
    # portable commands: no macOS-only `open URL`, no `pbcopy`
    assert not re.search(r"^\s*(open|pbcopy|pbpaste)\s", text, re.M)
