"""Parses OpenMetrics text from stdin with the Python prometheus_client reference parser.

Run by scripts/check-metrics.sh (a step of the full test command) from the venv that
scripts/install-tools.sh fills (pinned prometheus-client). The parser rejects what the OpenMetrics spec forbids: samples
out of their family, an exemplar on a sample that may not carry one, exemplar labels longer
than 128 characters, a missing `# EOF`. On success it prints one JSON object per line for every
sample that carries an exemplar (its timestamp in whole milliseconds), then a last line `{"families": N, "samples": M}`; on a parse
error it exits 1 with the parser's message on stderr.
"""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def millis(ts):
    """An exemplar timestamp in whole milliseconds (exact for the parser's Timestamp)."""
    if ts is None:
        return None
    if hasattr(ts, "sec"):
        return ts.sec * 1000 + ts.nsec // 1_000_000
    return round(float(ts) * 1000)


def main() -> int:
    text = sys.stdin.read()
    families = samples = 0
    try:
        for family in text_string_to_metric_families(text):
            families += 1
            for sample in family.samples:
                samples += 1
                if sample.exemplar is None:
                    continue
                print(
                    json.dumps(
                        {
                            "family": family.name,
                            "name": sample.name,
                            "labels": sample.labels,
                            "value": sample.value,
                            "exemplar": {
                                "labels": sample.exemplar.labels,
                                "value": sample.exemplar.value,
                                "timestamp_ms": millis(sample.exemplar.timestamp),
                            },
                        }
                    )
                )
    except ValueError as e:
        print(f"openmetrics parse error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"families": families, "samples": samples}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
