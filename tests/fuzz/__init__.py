"""A fuzzing harness for tlrules (issue 11): hostile inputs through the whole CLI and API.

Every case runs in a forked child of a process that has already imported torch,
torchvision and tlrules (``runner``), under an address-space and a time limit, in an empty
folder holding the case's files, with nothing writable. A case is *broken* when the promise
of docs/spec.md#bad-input does not hold: an exit code outside the expected set (3 is a bug, a
signal a crash), a traceback, an exit 2 without one ``error:`` line per problem (or with
other noise), a file written or changed, a hang, or memory over the limit; for the Python
API, a failed ``apply`` that changed the model, or an ``undo`` that did not restore it.

The inputs come in classes (``classes``): structured policies from Hypothesis strategies
(``strategies``), byte-level mutations of the shipped policies (``mutators``), generated
checkpoints (``checkpoints``), model specs, CLI argument vectors over every command, and
the Python API (``apicase``). ``python -m tests.fuzz --minutes N`` runs long;
``tests/e2e/test_fuzz.py`` runs a bounded, seeded slice in CI.
"""
