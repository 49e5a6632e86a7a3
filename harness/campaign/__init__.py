"""A fuzz campaign: run cases on two engines, compare, triage, shrink, bundle, report.

- compare.py: where two results first disagree, with every tolerance in one table;
- triage.py: whether a mismatch is float32 precision rather than semantics;
- shrink.py: the state of one disagreement being shrunk;
- fuzz.py: the hunt over Hypothesis runs, and a whole campaign over shards;
- bundle.py: a disagreement as a repro folder that replays;
- report.py: report.json, junit.xml and report.html from the records.
"""
