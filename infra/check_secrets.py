"""`make lint-secrets`: fails when a tracked file holds a possible secret nobody has
reviewed. detect-secrets scans a copy of `.secrets.baseline` (so line numbers that moved
change nothing committed); every finding in the result must carry a person's review
(`is_secret: false`, recorded by `make secrets-baseline` after looking at it). Its own
hook would instead fail whenever a reviewed finding merely moved to another line.

Usage: python infra/check_secrets.py DETECT_SECRETS_EXECUTABLE
"""

import json
import shutil
import subprocess
import sys
import tempfile

BASELINE = ".secrets.baseline"


def main():
    detect_secrets = sys.argv[1]
    with tempfile.TemporaryDirectory() as scratch:
        copy = f"{scratch}/baseline.json"
        shutil.copy(BASELINE, copy)
        # The baseline's own hashes are not secrets (the tool skips the baseline it
        # is given, which here is the copy).
        subprocess.run(
            [detect_secrets, "scan", "--baseline", copy, "--exclude-files", r"^\.secrets\.baseline$"],
            check=True,
        )
        with open(copy) as f:
            results = json.load(f)["results"]
    unreviewed = [
        (path, finding)
        for path, findings in sorted(results.items())
        for finding in findings
        if finding.get("is_secret") is not False
    ]
    for path, finding in unreviewed:
        print(f"{path}:{finding['line_number']}: {finding['type']} (not reviewed)")
    if unreviewed:
        print(
            f"{len(unreviewed)} possible secret(s). Remove each real one (and rotate it); "
            "after reviewing the rest, `make secrets-baseline` records them.",
            file=sys.stderr,
        )
        sys.exit(1)
    total = sum(len(findings) for findings in results.values())
    print(f"secrets: {total} finding(s), each reviewed as harmless")


if __name__ == "__main__":
    main()
