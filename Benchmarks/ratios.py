"""Shared by the benchmark scripts that log one `TAG {json}` line per run:
the runs grouped by tag, and the median and spread of paired ratios."""
import json
import statistics


def tagged_rows(path):
    """{tag: [run, ...]} in the order the runs were logged."""
    rows = {}
    for line in open(path):
        tag, _, rest = line.partition(" {")
        rows.setdefault(tag, []).append(json.loads("{" + rest))
    return rows


def ratio(runs, references, field):
    """Round i of `runs` over round i of `references`: "median x (min-max)"."""
    r = sorted(a[field] / b[field] for a, b in zip(runs, references))
    return f"{statistics.median(r):.2f}x ({r[0]:.2f}-{r[-1]:.2f})"


def spread(values, unit):
    """"median unit (min-max)" of plain figures."""
    v = sorted(values)
    return f"{statistics.median(v):.1f} {unit} ({v[0]:.1f}-{v[-1]:.1f})"
