#!/usr/bin/env python3
"""Print "<passed> <failed>" summed over the JUnit XML (bazel-testlogs/<pkg>/<name>/test.xml) of the given test
targets. A target without an XML file (not run, or it crashed before Bazel wrote one) counts as one failure."""
import os
import sys
import xml.etree.ElementTree as ET


def counts(label):
    pkg, _, name = label.lstrip("/").partition(":")
    path = os.path.join("bazel-testlogs", pkg, name, "test.xml")
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return 0, 1
    cases = root.iter("testcase")
    passed = failed = 0
    for case in cases:
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.get("status", "run") != "notrun" and case.find("skipped") is None:
            passed += 1
    if passed == 0 and failed == 0:
        failed = 1
    return passed, failed


def main():
    p = f = 0
    for label in sys.argv[1:]:
        a, b = counts(label)
        p += a
        f += b
    print(p, f)


if __name__ == "__main__":
    main()
