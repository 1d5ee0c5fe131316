"""Expand template.yaml with the SAM translator, offline, so cfn-lint can check the result.

cfn-lint validates a SAM template against SAM's own schema; it does not see the
resources SAM generates (roles and their policies, aliases, CodeDeploy groups, HTTP
API routes). Those are where dependency cycles and invalid IAM actions show up, so
`make lint-template` also lints the expanded template written by this script.

checkov scans the expanded template too (its IAM checks read the generated roles). A
resource SAM generates carries no Metadata of its own, so the checkov skips written on a
SAM resource (`Metadata.checkov.skip`, each with its reason) are copied to the resources
generated from it, which SAM names with the source's logical id as prefix
(SenderFunction -> SenderFunctionRole, HttpApi -> HttpApiApiGatewayDefaultStage).

Usage: python infra/sam_to_cfn.py template.yaml OUT.json
Needs aws-sam-translator (installed with aws-sam-cli in .venv-lint). No AWS calls:
managed policy names resolve from the translator's bundled map.
"""

import copy
import json
import logging
import os
import sys

from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.public.translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class OfflinePolicyLoader(ManagedPolicyLoader):
    """Never calls IAM; a managed policy name missing from the bundled map fails translation."""

    def __init__(self) -> None:
        pass

    def load(self) -> dict:
        return {}


def carry_checkov_skips(source: dict, expanded: dict) -> None:
    """Copies each source resource's checkov skips to the resources generated from it."""
    source_ids = set(source.get("Resources", {}))
    skips = {
        logical_id: resource["Metadata"]["checkov"]
        for logical_id, resource in source.get("Resources", {}).items()
        if isinstance(resource.get("Metadata"), dict) and "checkov" in resource["Metadata"]
    }
    for logical_id, resource in expanded.get("Resources", {}).items():
        if logical_id in source_ids:
            continue
        owners = [s for s in skips if logical_id.startswith(s)]
        if owners:
            owner = max(owners, key=len)
            resource.setdefault("Metadata", {})["checkov"] = skips[owner]


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    source, out = sys.argv[1], sys.argv[2]
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    logging.disable(logging.WARNING)  # the translator logs feature-toggle noise

    with open(source, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    # The translator wants S3 code locations; `sam build`/`sam deploy` fill in the real ones.
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = "s3://lint-placeholder/code.zip"

    pseudo = {"AWS::Region": os.environ["AWS_DEFAULT_REGION"], "AWS::Partition": "aws"}
    source = copy.deepcopy(template)
    try:
        expanded = transform(template, pseudo, OfflinePolicyLoader())
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"{source}: {cause.message}", file=sys.stderr)
        return 1

    carry_checkov_skips(source, expanded)

    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(expanded, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
