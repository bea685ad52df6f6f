"""The ACD's property test runs last: it is the slow one (about 2.5 s), and
with ``-x`` (mutation runs) a failure in any quicker test ends the run first."""


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: "test_acd_invariants.py" in item.nodeid)  # stable: the order is otherwise kept
